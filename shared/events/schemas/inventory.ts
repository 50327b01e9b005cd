// Inventory commands (exchange "commands") and the events they produce (exchange "inventory").
import { Type } from '@sinclair/typebox';
import { OrderId, Sku, StockLine, strict } from './common';

const Lines = Type.Array(StockLine, { minItems: 1, maxItems: 100 });

export const InventoryReserveV1 = Type.Object({ orderId: OrderId, items: Lines }, strict);
export const InventoryReleaseV1 = Type.Object({ orderId: OrderId }, strict);

export const InventoryReservedV1 = Type.Object({ orderId: OrderId, items: Lines }, strict);
export const InventoryRejectedV1 = Type.Object(
  { orderId: OrderId, reason: Type.Literal('out_of_stock'), skus: Type.Array(Sku, { maxItems: 100 }) },
  strict,
);
/** items is empty when nothing was reserved: a release of nothing changes nothing. */
export const InventoryReleasedV1 = Type.Object(
  { orderId: OrderId, items: Type.Array(StockLine, { maxItems: 100 }) },
  strict,
);
