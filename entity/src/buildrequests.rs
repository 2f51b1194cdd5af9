use sea_orm::entity::prelude::*;

/// A request to build a buildset on one builder.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "buildrequests")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub buildsetid: i32,
    pub builderid: i32,
    pub priority: i32,
    pub complete: Option<i32>,
    /// -1 while incomplete (Buildbot's encoding).
    pub results: Option<i16>,
    pub submitted_at: i32,
    pub complete_at: Option<i32>,
    pub waited_for: Option<i16>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::buildsets::Entity",
        from = "Column::Buildsetid",
        to = "super::buildsets::Column::Id",
        on_delete = "Cascade"
    )]
    Buildset,
    #[sea_orm(
        belongs_to = "super::builders::Entity",
        from = "Column::Builderid",
        to = "super::builders::Column::Id",
        on_delete = "Cascade"
    )]
    Builder,
}

impl Related<super::buildsets::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Buildset.def()
    }
}

impl Related<super::builders::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Builder.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
