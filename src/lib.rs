//! buildsets-graphql: a GraphQL API for Buildbot buildsets, on Buildbot's own schema.

pub mod store;
