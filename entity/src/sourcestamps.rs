use sea_orm::entity::prelude::*;

/// A description of source code (branch, revision, repository, ...), deduplicated by
/// `ss_hash`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sourcestamps")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    #[sea_orm(column_type = "String(StringLen::N(40))", unique)]
    pub ss_hash: String,
    #[sea_orm(column_type = "String(StringLen::N(256))", nullable)]
    pub branch: Option<String>,
    #[sea_orm(column_type = "String(StringLen::N(256))", nullable)]
    pub revision: Option<String>,
    pub patchid: Option<i32>,
    #[sea_orm(column_type = "String(StringLen::N(512))")]
    pub repository: String,
    #[sea_orm(column_type = "String(StringLen::N(256))")]
    pub codebase: String,
    #[sea_orm(column_type = "String(StringLen::N(512))")]
    pub project: String,
    /// Epoch seconds, UTC.
    pub created_at: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::patches::Entity",
        from = "Column::Patchid",
        to = "super::patches::Column::Id",
        on_delete = "Cascade"
    )]
    Patch,
    #[sea_orm(has_many = "super::buildset_sourcestamps::Entity")]
    BuildsetSourcestamps,
}

impl Related<super::patches::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Patch.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
