//! What the store's page loader must load for a selection: the one place that maps
//! schema fields to relations. `tests/plan.rs` selects every field of every type
//! through every entry point and fails when one needs a relation this misses.

use async_graphql::Lookahead;

use crate::store::Relations;

/// The type of the objects selected at a look-ahead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Selected {
    Buildset,
    BuildRequest,
    SourceStamp,
}

/// The relations that the selection `l` of objects of type `at` needs.
pub fn relations(at: Selected, l: &Lookahead<'_>) -> Relations {
    match at {
        Selected::Buildset => {
            let stamps = l.field("sourcestamps");
            let mut r = relations(Selected::BuildRequest, &l.field("buildrequests"));
            r.requests = l.field("buildrequests").exists();
            r.stamps = stamps.exists() || l.field("sourcestampIds").exists();
            r.patches = stamps.field("patch").exists();
            r.props = l.field("properties").exists() || l.field("property").exists();
            r
        }
        Selected::BuildRequest => {
            let buildset = l.field("buildset");
            Relations {
                requests: l.exists(),
                builders: l.field("builder").exists(),
                builds: l.field("builds").exists(),
                request_buildset: buildset
                    .exists()
                    .then(|| Box::new(relations(Selected::Buildset, &buildset))),
                ..Relations::default()
            }
        }
        Selected::SourceStamp => Relations {
            patches: l.field("patch").exists(),
            ..Relations::default()
        },
    }
}
