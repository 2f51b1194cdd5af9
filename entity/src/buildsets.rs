use sea_orm::entity::prelude::*;

/// A group of build requests submitted together by a scheduler.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "buildsets")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    #[sea_orm(column_type = "String(StringLen::N(256))", nullable)]
    pub external_idstring: Option<String>,
    #[sea_orm(column_type = "String(StringLen::N(256))", nullable)]
    pub reason: Option<String>,
    /// Epoch seconds, UTC.
    pub submitted_at: i32,
    pub complete: i16,
    pub complete_at: Option<i32>,
    /// -1 while incomplete (Buildbot's encoding).
    pub results: Option<i16>,
    pub parent_buildid: Option<i32>,
    #[sea_orm(column_type = "Text", nullable)]
    pub parent_relationship: Option<String>,
    pub rebuilt_buildid: Option<i32>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::buildset_properties::Entity")]
    Properties,
    #[sea_orm(has_many = "super::buildset_sourcestamps::Entity")]
    Sourcestamps,
    #[sea_orm(has_many = "super::buildrequests::Entity")]
    Buildrequests,
}

impl Related<super::buildset_properties::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Properties.def()
    }
}

impl Related<super::buildset_sourcestamps::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Sourcestamps.def()
    }
}

impl Related<super::buildrequests::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Buildrequests.def()
    }
}

impl Related<super::sourcestamps::Entity> for Entity {
    fn to() -> RelationDef {
        super::buildset_sourcestamps::Relation::Sourcestamp.def()
    }
    fn via() -> Option<RelationDef> {
        Some(super::buildset_sourcestamps::Relation::Buildset.def().rev())
    }
}

impl ActiveModelBehavior for ActiveModel {}
