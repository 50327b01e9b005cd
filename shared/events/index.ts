// Message contracts: envelope, catalog, schemas and aggregate versions. Workflow-safe (no Node, no I/O).
export * from './envelope';
export * from './catalog';
export * from './aggregate-versions';
