// The projections, by name: what `npm run projections:rebuild -- <name>` takes and what a
// runner follows. Adding one: docs/event-sourcing.md#adding-a-projection.
import { customerOrdersProjection } from './customer-orders';
import { orderProjection } from './order-projection';
import type { Projection } from './projection';

export type { Projection } from './projection';

export const PROJECTIONS: readonly Projection[] = [orderProjection, customerOrdersProjection];

export const PROJECTION_NAMES: readonly string[] = PROJECTIONS.map((p) => p.name);

/** The projection of that name; undefined when there is none. */
export const projectionNamed = (name: string): Projection | undefined => PROJECTIONS.find((p) => p.name === name);
