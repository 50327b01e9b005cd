// Message contracts: envelope, catalog and schemas. Workflow-safe (no Node, no I/O).
export * from './envelope';
export * from './catalog';
