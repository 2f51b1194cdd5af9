use sea_orm::entity::prelude::*;

/// A patch applied on top of a sourcestamp; the body is stored base64-encoded.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "patches")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub patchlevel: i32,
    #[sea_orm(column_type = "Text")]
    pub patch_base64: String,
    #[sea_orm(column_type = "Text")]
    pub patch_author: String,
    #[sea_orm(column_type = "Text")]
    pub patch_comment: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub subdir: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::sourcestamps::Entity")]
    Sourcestamps,
}

impl Related<super::sourcestamps::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Sourcestamps.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
