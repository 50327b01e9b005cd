// Loaded by mocha before any test (see .mocharc.json).
import 'reflect-metadata';
import chai from 'chai';
import chaiAsPromised from 'chai-as-promised';
import { DefaultLogger, makeTelemetryFilterString, Runtime } from '@temporalio/worker';
import { DEFAULT_OLDER_THAN_MS, deleteNamespaces, findStale, type NamespaceKind } from '../../scripts/bus';
import { errorMessage } from '../../shared/errors';

chai.use(chaiAsPromised);

// Temporal's worker and core log only errors in tests; INFO and WARN lines would drown the report.
Runtime.install({
  logger: new DefaultLogger('ERROR'),
  telemetryOptions: { logging: { filter: makeTelemetryFilterString({ core: 'ERROR' }) } },
});

/**
 * The clean-up of earlier runs' leftovers is bounded well within its hook's timeout, so that a
 * broker that does not answer costs a warning, not the suite: each listing, and each AMQP
 * connect attempt (of 4), in ms.
 */
const CLEANUP_STEP_TIMEOUT_MS = 10_000;
const CLEANUP_HOOK_TIMEOUT_MS = 90_000;

/** The namespaces tests make: a test fleet's `t<time><random>` and a test's own `test.<purpose>.<time><hex>`. */
const TEST_KINDS: readonly NamespaceKind[] = ['test-fleet', 'test'];

/**
 * Root hooks. Before any test: delete what killed test runs left on the broker (their
 * namespaces, with no consumer and no message, older than an hour), so that runs do not pile
 * up queues until the broker runs out of file descriptors. Only tests' own namespaces: a
 * chaos run or a benchmark may be live in another shell (with no consumer while its broker
 * restarts), and `npm run bus -- stale` is for those. A namespace in use has consumers or
 * messages or is younger, and is never touched; a broker that cannot be listed only costs a
 * warning.
 */
export const mochaHooks = {
  async beforeAll(this: Mocha.Context): Promise<void> {
    this.timeout(CLEANUP_HOOK_TIMEOUT_MS);
    try {
      const { stale } = await findStale({ olderThanMs: DEFAULT_OLDER_THAN_MS, kinds: TEST_KINDS, timeoutMs: CLEANUP_STEP_TIMEOUT_MS });
      if (stale.length === 0) return;
      const { deleted } = await deleteNamespaces(stale, { connectTimeoutMs: CLEANUP_STEP_TIMEOUT_MS });
      const queues = deleted.reduce((n, ns) => n + ns.queues.length, 0);
      console.log(`  test setup: deleted ${deleted.length} stale bus namespace(s) of killed test runs (${queues} queue(s))`);
    } catch (err) {
      console.warn(`  test setup: did not clean stale bus namespaces: ${errorMessage(err)}`);
    }
  },
};
