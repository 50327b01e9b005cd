// Loaded by mocha before any test (see .mocharc.json).
import 'reflect-metadata';
import chai from 'chai';
import chaiAsPromised from 'chai-as-promised';

chai.use(chaiAsPromised);
