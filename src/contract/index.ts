export * from './audit.js';
export * from './auth.js';
export * from './broker.js';
export * from './common.js';
export * from './credentials.js';
export * from './leases.js';
export * from './policies.js';
export * from './tenancy.js';
