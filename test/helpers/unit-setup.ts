// Loaded by `npm run test:unit` (.mocharc.unit.json) before the unit tests: what they need
// and nothing that talks to a service, so that they run in seconds on any machine. The
// whole suite (.mocharc.json) loads setup.ts instead, which also tidies the broker.
import 'reflect-metadata';
import chai from 'chai';
import chaiAsPromised from 'chai-as-promised';

chai.use(chaiAsPromised);
