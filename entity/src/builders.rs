use sea_orm::entity::prelude::*;

/// A builder, found or created by name (unique by `name_hash`).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "builders")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    #[sea_orm(column_type = "Text")]
    pub name: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub description: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub description_format: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub description_html: Option<String>,
    pub projectid: Option<i32>,
    #[sea_orm(column_type = "String(StringLen::N(40))", unique)]
    pub name_hash: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::buildrequests::Entity")]
    Buildrequests,
}

impl Related<super::buildrequests::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Buildrequests.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
