//! The table as template.yaml declares it, made for local runs and tests.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};

use super::backend;
use crate::store::StoreError;
use crate::store::keys::{self, PK, SK};

/// Creates the table as template.yaml declares it: for local runs and tests.
pub async fn create_table(client: &Client, name: &str) -> Result<(), StoreError> {
    let attr = |n: &str| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(backend)
    };
    let key = |n: &str, t: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(t)
            .build()
            .map_err(backend)
    };
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr(PK)?)
        .attribute_definitions(attr(SK)?)
        .attribute_definitions(attr(keys::GSI1PK)?)
        .attribute_definitions(attr(keys::GSI1SK)?)
        .attribute_definitions(attr(keys::GSI2PK)?)
        .attribute_definitions(attr(keys::GSI2SK)?)
        .key_schema(key(PK, KeyType::Hash)?)
        .key_schema(key(SK, KeyType::Range)?)
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(keys::GSI1)
                .key_schema(key(keys::GSI1PK, KeyType::Hash)?)
                .key_schema(key(keys::GSI1SK, KeyType::Range)?)
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()
                .map_err(backend)?,
        )
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(keys::GSI2)
                .key_schema(key(keys::GSI2PK, KeyType::Hash)?)
                .key_schema(key(keys::GSI2SK, KeyType::Range)?)
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::Include)
                        .set_non_key_attributes(Some(
                            keys::GSI2_ATTRIBUTES.map(String::from).to_vec(),
                        ))
                        .build(),
                )
                .build()
                .map_err(backend)?,
        )
        .send()
        .await
        .map_err(backend)?;
    client
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name(keys::EXPIRES_AT)
                .build()
                .map_err(backend)?,
        )
        .send()
        .await
        .map_err(backend)?;
    Ok(())
}
