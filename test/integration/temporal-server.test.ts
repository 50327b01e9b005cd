// The Temporal servers the test suites rely on start from the binaries the helper finds
// (.venv from scripts/install-temporal.sh here; the SDK's own download elsewhere).
import { expect } from 'chai';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { devServer, timeSkippingServer } from '../../shared/temporal/binaries';

describe('Temporal servers for tests', function () {
  this.timeout(120_000);

  it('starts the time-skipping test server', async () => {
    const env = await TestWorkflowEnvironment.createTimeSkipping({ server: timeSkippingServer() });
    try {
      expect(env.supportsTimeSkipping).to.equal(true);
      const info = await env.client.workflowService.getSystemInfo({});
      expect(info.capabilities).to.not.equal(undefined);
    } finally {
      await env.teardown();
    }
  });

  it('starts the dev server of the Temporal CLI', async () => {
    const env = await TestWorkflowEnvironment.createLocal({ server: devServer() });
    try {
      const namespaces = await env.client.workflowService.listNamespaces({});
      expect(namespaces.namespaces.map((n) => n.namespaceInfo?.name)).to.include('default');
    } finally {
      await env.teardown();
    }
  });
});
