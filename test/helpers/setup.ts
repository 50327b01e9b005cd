// Loaded by mocha before any test (see .mocharc.json).
import 'reflect-metadata';
import chai from 'chai';
import chaiAsPromised from 'chai-as-promised';
import { DefaultLogger, makeTelemetryFilterString, Runtime } from '@temporalio/worker';

chai.use(chaiAsPromised);

// Temporal's worker and core log only errors in tests; INFO and WARN lines would drown the report.
Runtime.install({
  logger: new DefaultLogger('ERROR'),
  telemetryOptions: { logging: { filter: makeTelemetryFilterString({ core: 'ERROR' }) } },
});
