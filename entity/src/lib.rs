//! SeaORM entities for the seven Buildbot tables this server reads and writes, and
//! Buildbot's `builds` (read only, in attached mode).
//!
//! Table names, column names and types are Buildbot 4.3's own, so the same rows are
//! readable by Buildbot's connectors and by ours.

pub mod builders;
pub mod buildrequests;
pub mod builds;
pub mod buildset_properties;
pub mod buildset_sourcestamps;
pub mod buildsets;
pub mod patches;
pub mod sourcestamps;
