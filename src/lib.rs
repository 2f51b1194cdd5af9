//! buildsets-graphql: a GraphQL API for Buildbot buildsets, on Buildbot's own schema.

pub mod config;
pub mod conn;
pub mod door;
pub mod error;
pub mod graphql;
pub mod hosts;
pub mod http;
pub mod listen;
pub mod live;
pub mod metrics;
pub mod store;
pub mod ws;
