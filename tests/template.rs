//! template.yaml and the code must agree: the table the store uses, the
//! queues and the dispatch deadline. The table and queues are created on moto
//! by the same code the local stack runs, and compared with the template.
//! Where a property depends on a parameter (the optional KMS key), the
//! template is read as CloudFormation would deploy it (`deployed`).

use std::collections::BTreeSet;

use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::json;
use serde_yaml_ng::Value;
use shared::Settings;
use shared::infra::{self, DISPATCH_TIMEOUT_SECS};
use shared::store::keys;
use testkit::{aws::sqs_client, fresh_store, unique};

fn template() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");
    let text = std::fs::read_to_string(path).expect("read template.yaml");
    serde_yaml_ng::from_str(&text).expect("template.yaml is YAML")
}

/// A parameter's value as CloudFormation compares it in a condition (a
/// string): the one given, or its default.
fn parameter_value(t: &Value, given: &[(&str, &str)], name: &str) -> String {
    if let Some((_, value)) = given.iter().find(|(n, _)| *n == name) {
        return (*value).to_owned();
    }
    let default = &t["Parameters"][name]["Default"];
    assert!(!default.is_null(), "parameter {name} has no default");
    scalar(default)
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => panic!("not a scalar: {other:?}"),
    }
}

/// Whether the template's condition `name` holds with these parameters.
fn condition_holds(t: &Value, given: &[(&str, &str)], name: &str) -> bool {
    let body = &t["Conditions"][name];
    assert!(!body.is_null(), "no condition {name}");
    truth(t, given, body)
}

fn truth(t: &Value, given: &[(&str, &str)], body: &Value) -> bool {
    let (tag, args) = tagged(body);
    let operand = |v: &Value| match v {
        Value::Tagged(r) if r.tag == "Ref" => parameter_value(t, given, r.value.as_str().unwrap()),
        other => scalar(other),
    };
    match tag.as_str() {
        "Not" => !truth(t, given, &args[0]),
        "And" => args
            .as_sequence()
            .unwrap()
            .iter()
            .all(|a| truth(t, given, a)),
        "Or" => args
            .as_sequence()
            .unwrap()
            .iter()
            .any(|a| truth(t, given, a)),
        "Equals" => operand(&args[0]) == operand(&args[1]),
        "Condition" => condition_holds(t, given, args.as_str().unwrap()),
        other => panic!("a condition's {other} is not modelled here"),
    }
}

/// `v` with each `!If` replaced by the branch its condition picks, every
/// `!Ref AWS::NoValue` left out (None: `v` itself is), and each `!Ref` of a
/// parameter in `given` replaced by its value.
fn decide(t: &Value, given: &[(&str, &str)], v: &Value) -> Option<Value> {
    match v {
        Value::Tagged(tagged) if tagged.tag == "If" => {
            let [condition, then, otherwise] = tagged.value.as_sequence().unwrap().as_slice()
            else {
                panic!("a malformed !If: {v:?}");
            };
            let holds = condition_holds(t, given, condition.as_str().unwrap());
            decide(t, given, if holds { then } else { otherwise })
        }
        Value::Tagged(tagged) if tagged.tag == "Ref" => {
            let name = tagged.value.as_str().unwrap();
            if name == "AWS::NoValue" {
                return None;
            }
            match given.iter().find(|(n, _)| *n == name) {
                Some((_, value)) => Some(Value::String((*value).to_owned())),
                None => Some(v.clone()),
            }
        }
        Value::Tagged(tagged) => Some(Value::Tagged(Box::new(serde_yaml_ng::value::TaggedValue {
            tag: tagged.tag.clone(),
            value: decide(t, given, &tagged.value).unwrap_or(Value::Null),
        }))),
        Value::Sequence(items) => Some(Value::Sequence(
            items.iter().filter_map(|i| decide(t, given, i)).collect(),
        )),
        Value::Mapping(map) => Some(Value::Mapping(
            map.iter()
                .filter_map(|(k, v)| decide(t, given, v).map(|v| (k.clone(), v)))
                .collect(),
        )),
        other => Some(other.clone()),
    }
}

/// The template as deployed with these parameter values (the others at
/// their defaults): see `decide`.
fn deployed(given: &[(&str, &str)]) -> Value {
    let t = template();
    decide(&t, given, &t).expect("a template")
}

fn resource<'a>(t: &'a Value, name: &str) -> &'a Value {
    &t["Resources"][name]["Properties"]
}

fn as_u64(v: &Value) -> u64 {
    match v {
        Value::Number(n) => n.as_u64().expect("a whole number"),
        Value::String(s) => s.parse().expect("a number in a string"),
        other => panic!("not a number: {other:?}"),
    }
}

fn default_of(t: &Value, parameter: &str) -> u64 {
    as_u64(&t["Parameters"][parameter]["Default"])
}

/// `!Ref Name` → `Name`.
fn reference(v: &Value) -> String {
    match v {
        Value::Tagged(tagged) if tagged.tag == "Ref" => {
            tagged.value.as_str().expect("ref name").to_owned()
        }
        other => panic!("not a !Ref: {other:?}"),
    }
}

fn key_schema(v: &Value) -> Vec<(String, String)> {
    v.as_sequence()
        .expect("a key schema")
        .iter()
        .map(|k| {
            (
                k["AttributeName"].as_str().unwrap().to_owned(),
                k["KeyType"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// A key schema as DescribeTable reports it.
fn sdk_keys(schema: &[aws_sdk_dynamodb::types::KeySchemaElement]) -> Vec<(String, String)> {
    schema
        .iter()
        .map(|k| {
            (
                k.attribute_name().to_owned(),
                k.key_type().as_str().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn the_table_in_the_template_is_the_table_the_code_creates() {
    let t = template();
    let table = resource(&t, "Table");
    assert_eq!(
        key_schema(&table["KeySchema"]),
        [
            (keys::PK.into(), "HASH".into()),
            (keys::SK.into(), "RANGE".into())
        ]
    );
    let gsi = &table["GlobalSecondaryIndexes"][0];
    assert_eq!(gsi["IndexName"].as_str(), Some(keys::GSI1));
    assert_eq!(
        key_schema(&gsi["KeySchema"]),
        [
            (keys::GSI1PK.into(), "HASH".into()),
            (keys::GSI1SK.into(), "RANGE".into())
        ]
    );
    assert_eq!(gsi["Projection"]["ProjectionType"].as_str(), Some("ALL"));
    let narrow = &table["GlobalSecondaryIndexes"][1];
    assert_eq!(narrow["IndexName"].as_str(), Some(keys::GSI2));
    assert_eq!(
        key_schema(&narrow["KeySchema"]),
        [
            (keys::GSI2PK.into(), "HASH".into()),
            (keys::GSI2SK.into(), "RANGE".into())
        ]
    );
    assert_eq!(
        narrow["Projection"]["ProjectionType"].as_str(),
        Some("INCLUDE")
    );
    let included: Vec<&str> = narrow["Projection"]["NonKeyAttributes"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    assert_eq!(included, keys::GSI2_ATTRIBUTES);
    assert_eq!(
        table["TimeToLiveSpecification"]["AttributeName"].as_str(),
        Some(keys::EXPIRES_AT)
    );
    assert_eq!(
        table["TimeToLiveSpecification"]["Enabled"].as_bool(),
        Some(true)
    );
    assert_eq!(table["BillingMode"].as_str(), Some("PAY_PER_REQUEST"));
    assert_eq!(
        table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"].as_bool(),
        Some(true)
    );
    assert_eq!(
        table["SSESpecification"]["SSEEnabled"].as_bool(),
        Some(true)
    );

    // What shared::store::create_table makes (the local stack's table) matches.
    let store = fresh_store().await;
    let described = store
        .client()
        .await
        .expect("client")
        .describe_table()
        .table_name(store.table())
        .send()
        .await
        .unwrap();
    let desc = described.table.unwrap();
    assert_eq!(sdk_keys(desc.key_schema()), key_schema(&table["KeySchema"]));
    let code_gsis = desc.global_secondary_indexes();
    assert_eq!(code_gsis.len(), 2);
    for (code_gsi, gsi) in code_gsis.iter().zip([gsi, narrow]) {
        assert_eq!(code_gsi.index_name(), gsi["IndexName"].as_str());
        assert_eq!(
            sdk_keys(code_gsi.key_schema()),
            key_schema(&gsi["KeySchema"])
        );
        let projection = code_gsi.projection().unwrap();
        assert_eq!(
            projection.projection_type().map(|p| p.as_str()),
            gsi["Projection"]["ProjectionType"].as_str()
        );
        let code_included: Vec<&str> = projection
            .non_key_attributes()
            .iter()
            .map(String::as_str)
            .collect();
        let template_included: Vec<&str> = gsi["Projection"]["NonKeyAttributes"]
            .as_sequence()
            .map(|a| a.iter().filter_map(|a| a.as_str()).collect())
            .unwrap_or_default();
        assert_eq!(code_included, template_included);
    }
    let template_attrs: BTreeSet<String> = table["AttributeDefinitions"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a["AttributeName"].as_str().unwrap().to_owned())
        .collect();
    let code_attrs: BTreeSet<String> = desc
        .attribute_definitions()
        .iter()
        .map(|a| a.attribute_name().to_owned())
        .collect();
    assert_eq!(code_attrs, template_attrs);
    let ttl = store
        .client()
        .await
        .expect("client")
        .describe_time_to_live()
        .table_name(store.table())
        .send()
        .await
        .unwrap();
    assert_eq!(
        ttl.time_to_live_description.unwrap().attribute_name(),
        Some(keys::EXPIRES_AT)
    );
}

async fn queue_attributes(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
) -> std::collections::HashMap<QueueAttributeName, String> {
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await;
    out.expect("GetQueueAttributes")
        .attributes
        .expect("attributes")
}

#[tokio::test]
async fn the_queues_in_the_template_are_the_queues_the_code_creates() {
    // As deployed without a customer-managed key, as the local stack runs.
    let t = deployed(&[]);
    let events = resource(&t, "EventsQueue");
    let dlq = resource(&t, "EventsDeadLetterQueue");
    assert_eq!(
        as_u64(&events["VisibilityTimeout"]),
        infra::QUEUE_VISIBILITY_TIMEOUT_SECS
    );
    assert_eq!(events["SqsManagedSseEnabled"].as_bool(), Some(true));
    assert_eq!(dlq["SqsManagedSseEnabled"].as_bool(), Some(true));
    assert_eq!(
        as_u64(&events["MessageRetentionPeriod"]),
        infra::QUEUE_RETENTION_SECS
    );
    assert_eq!(
        as_u64(&events["MaximumMessageSize"]),
        infra::QUEUE_MAX_MESSAGE_BYTES as u64
    );
    assert_eq!(
        as_u64(&dlq["MessageRetentionPeriod"]),
        infra::DLQ_RETENTION_SECS
    );
    assert_eq!(
        reference(&events["RedrivePolicy"]["maxReceiveCount"]),
        "MaxReceiveCount"
    );
    assert_eq!(
        default_of(&t, "MaxReceiveCount"),
        u64::from(infra::DEFAULT_MAX_RECEIVE_COUNT)
    );

    let sqs = sqs_client().await;
    let queues = infra::create_queues(&sqs, &unique("drift"), infra::DEFAULT_MAX_RECEIVE_COUNT)
        .await
        .unwrap();
    let dlq_attrs = queue_attributes(&sqs, &queues.dead_letter).await;
    // Both lanes' queues: the same timeout, the same redrive to the one DLQ.
    let slow = resource(&t, "SlowQueue");
    assert_eq!(slow["VisibilityTimeout"], events["VisibilityTimeout"]);
    assert_eq!(slow["SqsManagedSseEnabled"].as_bool(), Some(true));
    assert_eq!(slow["RedrivePolicy"], events["RedrivePolicy"]);
    assert_eq!(
        slow["MessageRetentionPeriod"],
        events["MessageRetentionPeriod"]
    );
    // A recovery counts an attempt queued as pending as long as its message
    // can live in the queue.
    assert_eq!(
        as_u64(&slow["MessageRetentionPeriod"]),
        shared::recovery::PENDING_SECS.unsigned_abs()
    );
    assert_eq!(slow["MaximumMessageSize"], events["MaximumMessageSize"]);
    for url in [&queues.events, &queues.slow] {
        let attrs = queue_attributes(&sqs, url).await;
        assert_eq!(
            attrs[&QueueAttributeName::VisibilityTimeout],
            events["VisibilityTimeout"].as_u64().unwrap().to_string()
        );
        assert_eq!(
            attrs[&QueueAttributeName::MessageRetentionPeriod],
            events["MessageRetentionPeriod"]
                .as_u64()
                .unwrap()
                .to_string()
        );
        assert_eq!(
            attrs[&QueueAttributeName::MaximumMessageSize],
            events["MaximumMessageSize"].as_u64().unwrap().to_string()
        );
        let redrive: serde_json::Value =
            serde_json::from_str(&attrs[&QueueAttributeName::RedrivePolicy]).unwrap();
        assert_eq!(
            as_u64(&serde_yaml_ng::to_value(&redrive["maxReceiveCount"]).unwrap()),
            default_of(&t, "MaxReceiveCount")
        );
        assert!(
            redrive["deadLetterTargetArn"].as_str()
                == dlq_attrs
                    .get(&QueueAttributeName::QueueArn)
                    .map(String::as_str)
        );
    }
    assert_eq!(
        dlq_attrs[&QueueAttributeName::MessageRetentionPeriod],
        infra::DLQ_RETENTION_SECS.to_string()
    );
}

#[test]
fn the_dispatch_function_matches_the_delivery_deadline() {
    let t = template();
    let dispatch = resource(&t, "DispatchFunction");
    let timeout = as_u64(&dispatch["Timeout"]);
    assert_eq!(timeout, DISPATCH_TIMEOUT_SECS);
    let globals = &t["Globals"]["Function"]["Environment"]["Variables"];
    let delivery_ms = as_u64(&globals["DELIVERY_TIMEOUT_MS"]);
    assert_eq!(
        delivery_ms,
        u64::from(Settings::DEFAULT_DELIVERY_TIMEOUT_MS)
    );
    // The batch's reads, a whole delivery, its record and the handler's
    // margin fit inside the function's timeout, with at least a second for
    // the reads and the records of a slow-lane batch that all end at once.
    let margin_ms = (dispatch::SAFETY_MARGIN + dispatch::RECORD_MARGIN).as_millis() as u64;
    assert!(
        delivery_ms + margin_ms + 1000 <= timeout * 1000,
        "Timeout {timeout}s leaves no room"
    );
    assert!(
        timeout * 1000 - delivery_ms <= 2000,
        "Timeout {timeout}s is not just above the deadline"
    );
    let queue_visibility = as_u64(&resource(&t, "EventsQueue")["VisibilityTimeout"]);
    assert!(
        queue_visibility >= 6 * timeout,
        "visibility {queue_visibility}s < 6 x {timeout}s"
    );

    let source = &dispatch["Events"]["Events"]["Properties"];
    assert_eq!(as_u64(&source["BatchSize"]), infra::SQS_BATCH_SIZE as u64);
    assert_eq!(
        source["FunctionResponseTypes"][0].as_str(),
        Some("ReportBatchItemFailures")
    );
    assert_eq!(
        reference(&source["ScalingConfig"]["MaximumConcurrency"]),
        "DispatchMaxConcurrency"
    );
    assert_eq!(
        default_of(&t, "DispatchMaxConcurrency"),
        infra::DEFAULT_DISPATCH_CONCURRENCY as u64
    );
}

/// The slow lane as the local stack runs it (cli/src/poller.rs): the batch,
/// the window, the concurrency, the threshold and the queue it reads.
#[test]
fn the_slow_lane_is_the_lane_the_code_runs() {
    let t = template();
    let dispatch = resource(&t, "DispatchFunction");
    let source = &dispatch["Events"]["SlowLane"]["Properties"];
    assert_eq!(as_u64(&source["BatchSize"]), infra::SLOW_BATCH_SIZE as u64);
    assert_eq!(
        as_u64(&source["MaximumBatchingWindowInSeconds"]),
        infra::SLOW_BATCHING_WINDOW_SECS
    );
    assert_eq!(
        source["FunctionResponseTypes"][0].as_str(),
        Some("ReportBatchItemFailures")
    );
    assert_eq!(
        reference(&source["ScalingConfig"]["MaximumConcurrency"]),
        "SlowLaneMaxConcurrency"
    );
    assert_eq!(
        default_of(&t, "SlowLaneMaxConcurrency"),
        infra::DEFAULT_SLOW_CONCURRENCY as u64
    );
    let Value::Tagged(queue) = &source["Queue"] else {
        panic!("the slow lane's Queue is not a !GetAtt");
    };
    assert_eq!(queue.value.as_str(), Some("SlowQueue.Arn"));
    let globals = &t["Globals"]["Function"]["Environment"]["Variables"];
    assert_eq!(reference(&globals["SLOW_QUEUE_URL"]), "SlowQueue");
    assert_eq!(reference(&globals["SLOW_THRESHOLD_MS"]), "SlowThresholdMs");
    assert_eq!(
        default_of(&t, "SlowThresholdMs"),
        u64::from(Settings::DEFAULT_SLOW_THRESHOLD_MS)
    );
    let api = resource(&t, "ApiFunction");
    assert_eq!(
        reference(&api["Environment"]["Variables"]["REDELIVERY_LIMIT_PER_MINUTE"]),
        "RedeliveryLimitPerMinute"
    );
    assert_eq!(
        default_of(&t, "RedeliveryLimitPerMinute"),
        u64::from(Settings::DEFAULT_REDELIVERIES_PER_MINUTE)
    );
    assert_eq!(
        default_of(&t, "TestEventLimitPer10Seconds"),
        u64::from(Settings::DEFAULT_TEST_EVENTS_PER_10_SECONDS)
    );
    assert_eq!(
        default_of(&t, "MaxDeliveriesInFlight"),
        u64::from(Settings::DEFAULT_MAX_DELIVERIES_IN_FLIGHT)
    );
    let dispatch = resource(&t, "DispatchFunction");
    assert_eq!(
        reference(&dispatch["Environment"]["Variables"]["AUTO_DISABLE_AFTER_SECONDS"]),
        "AutoDisableAfterSeconds"
    );
    assert_eq!(
        default_of(&t, "AutoDisableAfterSeconds"),
        u64::from(Settings::DEFAULT_AUTO_DISABLE_AFTER_SECONDS)
    );
    // A redelivery call queues at most one attempt per webhook: the budget
    // must hold the largest call, or a tenant at its limit could never redeliver.
    assert!(default_of(&t, "RedeliveryLimitPerMinute") >= default_of(&t, "MaxWebhooksPerTenant"));
    assert_eq!(
        default_of(&t, "DeliveryLogTtlDays"),
        u64::from(Settings::DEFAULT_LOG_TTL_DAYS)
    );
    assert_eq!(
        default_of(&t, "MaxWebhooksPerTenant"),
        u64::from(Settings::DEFAULT_MAX_WEBHOOKS)
    );
}

#[test]
fn the_template_builds_the_workspace_binaries() {
    let t = template();
    for (function, crate_dir) in [
        ("ApiFunction", "functions/api"),
        ("DispatchFunction", "functions/dispatch"),
    ] {
        let metadata = &t["Resources"][function]["Metadata"];
        assert_eq!(metadata["BuildMethod"].as_str(), Some("rust-cargolambda"));
        let binary = metadata["BuildProperties"]["Binary"].as_str().unwrap();
        let manifest = std::fs::read_to_string(format!(
            "{}/../{crate_dir}/Cargo.toml",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        assert!(
            manifest.contains(&format!("[[bin]]\nname = \"{binary}\"")),
            "{crate_dir} has no binary {binary}"
        );
    }
}

/// One caller cannot take all of the API or starve the dispatcher: the stage
/// is throttled and the api function's concurrency is reserved (and capped).
#[test]
fn the_api_is_throttled_and_its_concurrency_reserved() {
    let t = template();
    let routes = &resource(&t, "HttpApi")["DefaultRouteSettings"];
    assert_eq!(
        reference(&routes["ThrottlingBurstLimit"]),
        "ApiThrottlingBurstLimit"
    );
    assert_eq!(
        reference(&routes["ThrottlingRateLimit"]),
        "ApiThrottlingRateLimit"
    );
    assert!(default_of(&t, "ApiThrottlingRateLimit") <= default_of(&t, "ApiThrottlingBurstLimit"));
    let reserved = &resource(&t, "ApiFunction")["ReservedConcurrentExecutions"];
    let Value::Tagged(tagged) = reserved else {
        panic!("ReservedConcurrentExecutions is not an !If: {reserved:?}");
    };
    assert_eq!(tagged.tag, "If");
    assert!(default_of(&t, "ApiReservedConcurrency") > 0);
}

/// Targeted messages cannot be forged: only the functions may send to the
/// slow lane's queue (a queue policy denies everyone else), and the
/// functions cannot send to the producers' events queue.
#[test]
fn only_the_functions_write_the_slow_lane() {
    let t = template();
    let policy = resource(&t, "SlowQueuePolicy");
    let statement = &policy["PolicyDocument"]["Statement"][0];
    assert_eq!(statement["Effect"].as_str(), Some("Deny"));
    assert_eq!(statement["Principal"].as_str(), Some("*"));
    assert_eq!(statement["Action"].as_str(), Some("sqs:SendMessage"));
    let allowed: Vec<String> = statement["Condition"]["ArnNotEquals"]["aws:PrincipalArn"]
        .as_sequence()
        .expect("a list of role ARNs")
        .iter()
        .map(|v| match v {
            Value::Tagged(tagged) => tagged.value.as_str().unwrap_or_default().to_owned(),
            other => panic!("not a !GetAtt: {other:?}"),
        })
        .collect();
    assert_eq!(allowed, ["ApiFunctionRole.Arn", "DispatchFunctionRole.Arn"]);
    for function in ["ApiFunction", "DispatchFunction"] {
        let policies = serde_yaml_ng::to_string(&resource(&t, function)["Policies"]).unwrap();
        assert!(
            !policies.contains("EventsQueue"),
            "{function} may write to the events queue:\n{policies}"
        );
        assert!(
            policies.contains("SlowQueue"),
            "{function} cannot reach the slow lane"
        );
    }
}

/// The DynamoDB actions a function's policy allows, and those it denies on
/// `APIKEY#` items.
fn table_actions(t: &Value, function: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut allowed = BTreeSet::new();
    let mut denied_on_api_keys = BTreeSet::new();
    let policies = resource(t, function)["Policies"]
        .as_sequence()
        .expect("policies");
    for policy in policies {
        let Some(statements) = policy["Statement"].as_sequence() else {
            continue; // a SAM policy template (the slow lane's SQSSendMessagePolicy)
        };
        for s in statements {
            let actions: Vec<String> = match &s["Action"] {
                Value::String(a) => vec![a.clone()],
                Value::Sequence(list) => list
                    .iter()
                    .filter_map(|a| a.as_str().map(str::to_owned))
                    .collect(),
                other => panic!("{function}: an action list {other:?}"),
            };
            match s["Effect"].as_str() {
                Some("Allow") => {
                    allowed.extend(actions.into_iter().filter(|a| a.starts_with("dynamodb:")))
                }
                Some("Deny") => {
                    let keys = serde_yaml_ng::to_string(&s["Condition"]).unwrap();
                    if keys.contains("dynamodb:LeadingKeys") && keys.contains("APIKEY#*") {
                        denied_on_api_keys.extend(actions);
                    }
                }
                other => panic!("{function}: effect {other:?}"),
            }
        }
    }
    (allowed, denied_on_api_keys)
}

/// The partition-key patterns a function's `dynamodb:BatchWriteItem` is
/// allowed on (`ForAllValues:StringLike` on `dynamodb:LeadingKeys`); `*` for
/// a statement without that condition.
fn batch_write_scope(t: &Value, function: &str) -> Vec<String> {
    let mut scope = Vec::new();
    for policy in resource(t, function)["Policies"].as_sequence().unwrap() {
        for s in policy["Statement"].as_sequence().into_iter().flatten() {
            let actions = serde_yaml_ng::to_string(&s["Action"]).unwrap();
            if s["Effect"].as_str() != Some("Allow") || !actions.contains("dynamodb:BatchWriteItem")
            {
                continue;
            }
            match s["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"].as_sequence() {
                Some(keys) => scope.extend(keys.iter().map(|k| k.as_str().unwrap().to_owned())),
                None => scope.push("*".into()),
            }
        }
    }
    scope
}

/// Least privilege on the table. No `Scan`, no wildcard. `BatchWriteItem`
/// (which can delete) only for delivery records, on events' partitions
/// only. The dispatcher may not write an API key item; the api function
/// creates and revokes them but may not delete one: a revoked key stays
/// listed.
#[test]
fn the_functions_may_not_scan_nor_write_api_keys() {
    let t = template();
    let api_key_prefix = keys::api_key_pk("");
    assert_eq!(api_key_prefix, "APIKEY#", "the Deny's LeadingKeys pattern");
    // Delivery records: the dispatcher's, and the api's test events'.
    for function in ["ApiFunction", "DispatchFunction"] {
        assert_eq!(batch_write_scope(&t, function), ["EVENT#*"], "{function}");
    }
    let record_pk = keys::event_pk(
        &shared::TenantId::parse("acme").unwrap(),
        &shared::event::EventId::parse("evt_1").unwrap(),
    );
    assert!(record_pk.starts_with("EVENT#"), "{record_pk}");
    for other in [
        keys::tenant_pk(&shared::TenantId::parse("acme").unwrap()),
        keys::api_key_pk("h"),
    ] {
        assert!(
            !other.starts_with("EVENT#"),
            "{other} is out of the batch writes' reach"
        );
    }
    for function in ["ApiFunction", "DispatchFunction"] {
        let (allowed, denied_on_api_keys) = table_actions(&t, function);
        for forbidden in ["dynamodb:Scan", "dynamodb:*", "dynamodb:DeleteTable"] {
            assert!(!allowed.contains(forbidden), "{function} may {forbidden}");
        }
        assert!(
            allowed.contains("dynamodb:Query"),
            "{function}: {allowed:?}"
        );
        let must_deny: &[&str] = match function {
            "ApiFunction" => &["dynamodb:DeleteItem"],
            _ => &[
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
                "dynamodb:DeleteItem",
            ],
        };
        for action in must_deny {
            assert!(
                denied_on_api_keys.contains(*action),
                "{function} may {action} APIKEY# items: {denied_on_api_keys:?}"
            );
        }
    }
    // The api function deletes webhooks (in a transaction); the dispatcher never deletes.
    assert!(
        table_actions(&t, "ApiFunction")
            .0
            .contains("dynamodb:DeleteItem")
    );
    assert!(
        !table_actions(&t, "DispatchFunction")
            .0
            .contains("dynamodb:DeleteItem")
    );
}

/// Logs are kept for a bounded time, the API writes
/// access logs (without headers, so without API keys), the alarms reach an
/// SNS topic, and CORS is off unless an origin is given.
#[test]
fn logs_expire_alarms_notify_and_cors_is_off_by_default() {
    let t = template();
    let retention = |group: &str| reference(&resource(&t, group)["RetentionInDays"]);
    for (function, group) in [
        ("ApiFunction", "ApiFunctionLogs"),
        ("DispatchFunction", "DispatchFunctionLogs"),
    ] {
        assert_eq!(
            reference(&resource(&t, function)["LoggingConfig"]["LogGroup"]),
            group
        );
        assert_eq!(retention(group), "LogRetentionDays");
    }
    let access = &resource(&t, "HttpApi")["AccessLogSettings"];
    let destination = serde_yaml_ng::to_string(&access["DestinationArn"]).unwrap();
    assert!(destination.contains("ApiAccessLogs.Arn"), "{destination}");
    assert_eq!(retention("ApiAccessLogs"), "LogRetentionDays");
    let format = access["Format"].as_str().unwrap();
    assert!(format.contains("$context.requestId") && format.contains("$context.status"));
    assert!(!format.to_lowercase().contains("header") && !format.contains("authorizer"));
    assert!(default_of(&t, "LogRetentionDays") > 0);
    for alarm in ["DeadLetterAlarm", "DispatchErrorsAlarm"] {
        let actions = &resource(&t, alarm)["AlarmActions"];
        assert_eq!(reference(&actions[0]), "AlarmTopic", "{alarm}");
    }
    assert_eq!(
        t["Parameters"]["CorsAllowOrigin"]["Default"].as_str(),
        Some("")
    );
    let cors = &resource(&t, "HttpApi")["CorsConfiguration"];
    let Value::Tagged(tagged) = cors else {
        panic!("CorsConfiguration is not an !If: {cors:?}");
    };
    assert_eq!(tagged.tag, "If");
    assert_eq!(tagged.value[0].as_str(), Some("HasCors"));
}

/// The dashboard's body is JSON once CloudFormation substitutes
/// it, and every metric of ours it draws (and the alarm watches) is one the
/// dispatcher writes, with the dimensions it writes.
#[test]
fn the_dashboard_and_the_failure_alarm_draw_the_metrics_the_dispatcher_writes() {
    use dispatch::metrics::{NAMESPACE, Tally};
    let t = template();
    let sub = &resource(&t, "Dashboard")["DashboardBody"];
    let Value::Tagged(tagged) = sub else {
        panic!("DashboardBody is not a !Sub: {sub:?}");
    };
    let body = tagged.value[0].as_str().expect("the body");
    let names = tagged.value[1].as_mapping().expect("the names");
    let mut text = body.replace("${AWS::Region}", "eu-west-1");
    for (name, _) in names {
        let name = name.as_str().unwrap();
        text = text.replace(&format!("${{{name}}}"), "fn-or-queue");
    }
    assert!(!text.contains("${"), "an unsubstituted name: {text}");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("the body is JSON");

    // What a batch writes: metric names with the dimension sets they come in.
    let tally = Tally::default();
    tally.delivery(
        &shared::TenantId::parse("acme").unwrap(),
        shared::Lane::Main,
        &shared::delivery::Attempt::bare(shared::delivery::Outcome::Delivered, Some(200), 1),
    );
    let mut written = BTreeSet::new();
    for line in tally.lines("f", shared::Lane::Main, 0, 0) {
        let doc: serde_json::Value = serde_json::from_str(&line).unwrap();
        for d in doc["_aws"]["CloudWatchMetrics"].as_array().unwrap() {
            for set in d["Dimensions"].as_array().unwrap() {
                let mut dims: Vec<String> = set
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s.as_str().unwrap().to_owned())
                    .collect();
                dims.sort();
                for m in d["Metrics"].as_array().unwrap() {
                    written.insert((m["Name"].as_str().unwrap().to_owned(), dims.clone()));
                }
            }
        }
    }
    let mut drawn = 0;
    for widget in dashboard["widgets"].as_array().unwrap() {
        for metric in widget["properties"]["metrics"].as_array().unwrap() {
            let metric = metric.as_array().unwrap();
            if let Some(expression) = metric[0]["expression"].as_str() {
                assert!(expression.contains(&format!("{{{NAMESPACE},Function,Lane,Outcome}}")));
                assert!(
                    written
                        .iter()
                        .any(|(n, _)| expression.contains(&format!("MetricName=\"{n}\"")))
                );
                drawn += 1;
                continue;
            }
            if metric[0].as_str() != Some(NAMESPACE) {
                continue; // AWS/SQS, AWS/Lambda, AWS/ApiGateway
            }
            let name = metric[1].as_str().unwrap().to_owned();
            let mut dims: Vec<String> = metric[2..]
                .iter()
                .filter_map(|v| v.as_str())
                .step_by(2)
                .map(str::to_owned)
                .collect();
            dims.sort();
            assert!(
                written.contains(&(name.clone(), dims.clone())),
                "{name} by {dims:?} is not written"
            );
            drawn += 1;
        }
    }
    assert!(drawn >= 8, "{drawn} of our metrics drawn");

    let alarm = resource(&t, "DeliveryFailureAlarm");
    assert_eq!(reference(&alarm["AlarmActions"][0]), "AlarmTopic");
    assert_eq!(reference(&alarm["Threshold"]), "DeliveryFailureAlarmRatio");
    for query in alarm["Metrics"].as_sequence().unwrap() {
        let stat = &query["MetricStat"];
        if stat.is_null() {
            continue;
        }
        assert_eq!(as_u64(&stat["Period"]), 900, "15 minutes");
        let metric = &stat["Metric"];
        assert_eq!(metric["Namespace"].as_str(), Some(NAMESPACE));
        let name = metric["MetricName"].as_str().unwrap().to_owned();
        assert!(
            written.contains(&(name.clone(), vec!["Function".to_owned()])),
            "{name}"
        );
    }
}

/// The index resources a function may `dynamodb:Query` (as written in the
/// template: `${Table.Arn}/index/...`).
fn queried_indexes(t: &Value, function: &str) -> Vec<String> {
    let mut found = Vec::new();
    for policy in resource(t, function)["Policies"].as_sequence().unwrap() {
        for s in policy["Statement"].as_sequence().into_iter().flatten() {
            let actions = serde_yaml_ng::to_string(&s["Action"]).unwrap();
            if s["Effect"].as_str() != Some("Allow") || !actions.contains("dynamodb:Query") {
                continue;
            }
            let resources = serde_yaml_ng::to_string(&s["Resource"]).unwrap();
            found.extend(
                resources
                    .split_whitespace()
                    .filter(|r| r.contains("/index/"))
                    .map(str::to_owned),
            );
        }
    }
    found
}

/// A recovery's pages read the tenant's events by time in
/// GSI1, in the api function (its first page) and in the dispatch function
/// (the rest, from the slow lane). moto checks actions only, so the
/// rehearsal cannot see a missing index resource: this does.
#[test]
fn both_functions_may_query_the_index_recoveries_read() {
    let t = template();
    for function in ["ApiFunction", "DispatchFunction"] {
        let indexes = queried_indexes(&t, function);
        assert!(
            indexes.iter().any(|r| r.ends_with("/index/GSI1\"")
                || r.ends_with("/index/*\"")
                || r.ends_with("/index/GSI1")
                || r.ends_with("/index/*")),
            "{function} may not query GSI1: {indexes:?}"
        );
    }
}

/// `!Tag value` → (tag, value).
fn tagged(v: &Value) -> (String, &Value) {
    match v {
        Value::Tagged(t) => (
            t.tag.to_string().trim_start_matches('!').to_owned(),
            &t.value,
        ),
        other => panic!("not tagged: {other:?}"),
    }
}

/// The edge is optional (off by default) and cannot be gone around: the
/// distribution uses the web ACL given, forwards uncached with the header
/// the api function checks, and that header's value is the secret the
/// function is given; the web ACL's template limits each address.
#[test]
fn the_optional_edge_forwards_its_secret_and_limits_each_address() {
    let t = template();
    assert_eq!(
        t["Parameters"]["EdgeWebAclArn"]["Default"].as_str(),
        Some("")
    );
    for name in ["ApiEdge", "EdgeOriginSecret"] {
        assert_eq!(t["Resources"][name]["Condition"].as_str(), Some("HasEdge"));
    }
    let edge = &resource(&t, "ApiEdge")["DistributionConfig"];
    assert_eq!(reference(&edge["WebACLId"]), "EdgeWebAclArn");
    let header = &edge["Origins"][0]["OriginCustomHeaders"][0];
    assert_eq!(
        header["HeaderName"].as_str(),
        Some(api::ORIGIN_VERIFY_HEADER)
    );
    let behaviour = &edge["DefaultCacheBehavior"];
    assert_eq!(
        behaviour["CachePolicyId"].as_str(),
        Some("4135ea2d-6df8-44a3-9df3-4b5a84be39ad"),
        "CachingDisabled: nothing of a tenant is cached at the edge"
    );
    assert_eq!(
        behaviour["ViewerProtocolPolicy"].as_str(),
        Some("https-only")
    );
    let variables = &resource(&t, "ApiFunction")["Environment"]["Variables"];
    let (tag, choice) = tagged(&variables["ORIGIN_VERIFY_SECRET"]);
    assert_eq!(tag, "If");
    assert_eq!(choice[0].as_str(), Some("HasEdge"));
    assert_eq!(choice[1], header["HeaderValue"], "the header is the secret");
    assert_eq!(choice[2].as_str(), Some(""), "no edge: no check");

    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../edge-waf.yaml");
    let waf: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let acl = &waf["Resources"]["WebAcl"]["Properties"];
    assert_eq!(acl["Scope"].as_str(), Some("CLOUDFRONT"));
    let rule = &acl["Rules"][0];
    let rate = &rule["Statement"]["RateBasedStatement"];
    assert_eq!(rate["AggregateKeyType"].as_str(), Some("IP"));
    assert_eq!(reference(&rate["Limit"]), "RequestsPerAddress");
    assert_eq!(
        rule["Action"]["Block"]["CustomResponse"]["ResponseCode"].as_u64(),
        Some(429)
    );
}

/// The logical ids of the template's resources of a type.
fn resources_of(t: &Value, kind: &str) -> Vec<String> {
    let found: Vec<String> = t["Resources"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some(kind))
        .map(|(name, _)| name.as_str().unwrap().to_owned())
        .collect();
    assert!(!found.is_empty(), "no {kind} in the template");
    found
}

/// The statements of a function's policies that name a KMS action.
fn kms_statements(t: &Value, function: &str) -> Vec<Value> {
    let mut found = Vec::new();
    for policy in resource(t, function)["Policies"].as_sequence().unwrap() {
        let Some(statements) = policy["Statement"].as_sequence() else {
            // A SAM policy template: none of them may be a KMS one.
            let name = serde_yaml_ng::to_string(policy).unwrap();
            assert!(!name.to_lowercase().contains("kms"), "{function}: {name}");
            continue;
        };
        for s in statements {
            if serde_yaml_ng::to_string(&s["Action"])
                .unwrap()
                .contains("kms:")
            {
                found.push(s.clone());
            }
        }
    }
    found
}

/// The customer-managed key is optional. Without it nothing changes: the
/// keys AWS manages, and no KMS right for any function. With it, the table,
/// every queue, every log group and the alarm topic name it (SQS refuses
/// SqsManagedSseEnabled beside it), and each function may use that key
/// alone, for exactly what SQS asks of a sender and a receiver.
#[test]
fn a_customer_managed_key_encrypts_every_store_and_only_when_given() {
    const KEY: &str =
        "arn:aws:kms:ap-south-1:123456789012:key/11111111-2222-3333-4444-555555555555";
    let t = template();
    assert_eq!(t["Parameters"]["KmsKeyArn"]["Default"].as_str(), Some(""));
    let tables = resources_of(&t, "AWS::DynamoDB::Table");
    let queues = resources_of(&t, "AWS::SQS::Queue");
    let log_groups = resources_of(&t, "AWS::Logs::LogGroup");
    let topics = resources_of(&t, "AWS::SNS::Topic");
    let functions = resources_of(&t, "AWS::Serverless::Function");
    for name in ["EventsQueue", "SlowQueue", "EventsDeadLetterQueue"] {
        assert!(queues.contains(&name.to_owned()), "{name}");
    }
    assert_eq!(log_groups.len(), 3, "{log_groups:?}");
    assert_eq!(functions.len(), 2, "{functions:?}");

    let off = deployed(&[]);
    for table in &tables {
        let sse = &resource(&off, table)["SSESpecification"];
        let keys: Vec<&str> = sse
            .as_mapping()
            .unwrap()
            .keys()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(keys, ["SSEEnabled"], "{table}: the AWS managed key");
        assert_eq!(sse["SSEEnabled"].as_bool(), Some(true));
    }
    for queue in &queues {
        let q = resource(&off, queue);
        assert_eq!(q["SqsManagedSseEnabled"].as_bool(), Some(true), "{queue}");
        assert!(q["KmsMasterKeyId"].is_null(), "{queue}");
    }
    for group in &log_groups {
        assert!(resource(&off, group)["KmsKeyId"].is_null(), "{group}");
    }
    for topic in &topics {
        assert!(resource(&off, topic)["KmsMasterKeyId"].is_null(), "{topic}");
    }
    for function in &functions {
        assert!(kms_statements(&off, function).is_empty(), "{function}");
        let policies = serde_yaml_ng::to_string(&resource(&off, function)["Policies"]).unwrap();
        assert!(!policies.contains("kms:"), "{function}: {policies}");
    }

    let on = deployed(&[("KmsKeyArn", KEY)]);
    for table in &tables {
        let sse = &resource(&on, table)["SSESpecification"];
        assert_eq!(sse["SSEEnabled"].as_bool(), Some(true), "{table}");
        assert_eq!(sse["SSEType"].as_str(), Some("KMS"), "{table}");
        assert_eq!(sse["KMSMasterKeyId"].as_str(), Some(KEY), "{table}");
    }
    for queue in &queues {
        let q = resource(&on, queue);
        assert_eq!(q["KmsMasterKeyId"].as_str(), Some(KEY), "{queue}");
        assert!(
            q["SqsManagedSseEnabled"].is_null(),
            "{queue}: both kinds of SSE"
        );
    }
    for group in &log_groups {
        assert_eq!(
            resource(&on, group)["KmsKeyId"].as_str(),
            Some(KEY),
            "{group}"
        );
    }
    for topic in &topics {
        assert_eq!(
            resource(&on, topic)["KmsMasterKeyId"].as_str(),
            Some(KEY),
            "{topic}"
        );
    }
    for function in &functions {
        let statements = kms_statements(&on, function);
        assert_eq!(statements.len(), 1, "{function}: {statements:?}");
        let s = &statements[0];
        assert_eq!(s["Effect"].as_str(), Some("Allow"), "{function}");
        let actions: BTreeSet<&str> = s["Action"]
            .as_sequence()
            .expect("a list of actions")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(
            actions,
            BTreeSet::from(["kms:Decrypt", "kms:GenerateDataKey*"]),
            "{function}"
        );
        assert_eq!(
            s["Resource"].as_str(),
            Some(KEY),
            "{function}: that key alone"
        );
    }
}

/// The template after the SAM transform (`scripts/sam_translate.py`, in the
/// SAM tools' virtual environment), with these parameter overrides: each
/// becomes the parameter's default, which the conditions are decided with.
fn transformed(overrides: &[&str]) -> serde_json::Value {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let venv = std::process::Command::new(format!("{root}/scripts/setup-venv"))
        .arg("sam")
        .status()
        .expect("scripts/setup-venv sam");
    assert!(venv.success(), "scripts/setup-venv sam failed");
    let out = std::process::Command::new(format!("{root}/.venv-sam/bin/python"))
        .arg(format!("{root}/scripts/sam_translate.py"))
        .arg(format!("{root}/template.yaml"))
        .args(overrides)
        .env("AWS_DEFAULT_REGION", "eu-west-1")
        .output()
        .expect("scripts/sam_translate.py");
    assert!(
        out.status.success(),
        "sam_translate.py {overrides:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the transformed template is JSON")
}

/// A transformed template as CloudFormation would create it: the resources
/// and outputs whose condition holds, each `Fn::If` decided and every
/// `AWS::NoValue` left out, with the parameters at their defaults.
struct Created {
    resources: serde_json::Map<String, serde_json::Value>,
    outputs: serde_json::Map<String, serde_json::Value>,
}

impl Created {
    fn of(t: &serde_json::Value) -> Self {
        let live = |section: &str| -> serde_json::Map<String, serde_json::Value> {
            t[section]
                .as_object()
                .expect("a section")
                .iter()
                .filter(|(_, v)| v["Condition"].as_str().is_none_or(|c| json_holds(t, c)))
                .filter_map(|(k, v)| json_decided(t, v).map(|v| (k.clone(), v)))
                .collect()
        };
        Self {
            resources: live("Resources"),
            outputs: live("Outputs"),
        }
    }

    /// The logical ids of the created resources of a type.
    fn of_type(&self, kind: &str) -> BTreeSet<String> {
        self.resources
            .iter()
            .filter(|(_, r)| r["Type"] == kind)
            .map(|(name, _)| name.clone())
            .collect()
    }

    fn properties(&self, name: &str) -> &serde_json::Value {
        &self.resources[name]["Properties"]
    }
}

/// Whether a condition of the transformed template holds.
fn json_holds(t: &serde_json::Value, name: &str) -> bool {
    let body = &t["Conditions"][name];
    assert!(!body.is_null(), "no condition {name}");
    json_truth(t, body)
}

fn json_truth(t: &serde_json::Value, body: &serde_json::Value) -> bool {
    let (function, args) = body
        .as_object()
        .and_then(|o| o.iter().next())
        .unwrap_or_else(|| panic!("not a condition: {body}"));
    let all = || args.as_array().expect("a list").iter();
    match function.as_str() {
        "Condition" => json_holds(t, args.as_str().expect("a name")),
        "Fn::Not" => !json_truth(t, &args[0]),
        "Fn::And" => all().all(|a| json_truth(t, a)),
        "Fn::Or" => all().any(|a| json_truth(t, a)),
        "Fn::Equals" => json_operand(t, &args[0]) == json_operand(t, &args[1]),
        other => panic!("a condition's {other} is not modelled here"),
    }
}

/// A literal, or a parameter's default, as CloudFormation compares them.
fn json_operand(t: &serde_json::Value, v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Object(o) if o.contains_key("Ref") => {
            let name = o["Ref"].as_str().expect("a name");
            json_operand(t, &t["Parameters"][name]["Default"])
        }
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::Bool(b) => b.to_string(),
        other => panic!("cannot compare {other}"),
    }
}

fn json_decided(t: &serde_json::Value, v: &serde_json::Value) -> Option<serde_json::Value> {
    use serde_json::Value as J;
    match v {
        J::Object(o) if o.len() == 1 && o.get("Ref") == Some(&json!("AWS::NoValue")) => None,
        J::Object(o) if o.len() == 1 && o.contains_key("Fn::If") => {
            let [condition, then, otherwise] = o["Fn::If"].as_array().expect("Fn::If").as_slice()
            else {
                panic!("a malformed Fn::If: {v}");
            };
            let holds = json_holds(t, condition.as_str().expect("a condition name"));
            json_decided(t, if holds { then } else { otherwise })
        }
        J::Object(o) => Some(J::Object(
            o.iter()
                .filter_map(|(k, v)| json_decided(t, v).map(|v| (k.clone(), v)))
                .collect(),
        )),
        J::Array(items) => Some(J::Array(
            items.iter().filter_map(|i| json_decided(t, i)).collect(),
        )),
        other => Some(other.clone()),
    }
}

/// `{"Ref": name}` → name.
fn json_ref(v: &serde_json::Value) -> String {
    v["Ref"]
        .as_str()
        .unwrap_or_else(|| panic!("not a Ref: {v}"))
        .to_owned()
}

/// `{"Fn::GetAtt": [name, attribute]}` → (name, attribute).
fn json_get_att(v: &serde_json::Value) -> (String, String) {
    match v["Fn::GetAtt"].as_array().map(Vec::as_slice) {
        Some([name, attribute]) => (
            name.as_str().unwrap().to_owned(),
            attribute.as_str().unwrap().to_owned(),
        ),
        _ => panic!("not a Fn::GetAtt: {v}"),
    }
}

fn json_refs(v: &serde_json::Value) -> BTreeSet<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(json_ref)
        .collect()
}

const VPC_ACCESS: &str = "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole";

/// With `StaticEgress=true` the stack holds a VPC with a public and a
/// private subnet in each of two availability zones, a NAT gateway with an
/// Elastic IP in each public subnet, each private subnet routing the
/// internet to the NAT gateway of its own zone and DynamoDB to a gateway
/// endpoint, and every function in the private subnets under a security
/// group that lets nothing in; the addresses are an output and the api
/// function's `EGRESS_IPS`. By default (the negative control) none of it:
/// no EC2 resource, no function in a VPC, no addresses.
#[test]
fn static_egress_runs_every_function_behind_two_nat_gateways_only_when_asked() {
    let t = template();
    let parameter = &t["Parameters"]["StaticEgress"];
    assert_eq!(parameter["Default"].as_str(), Some("false"));
    let allowed: Vec<&str> = parameter["AllowedValues"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(allowed, ["true", "false"]);

    let on = Created::of(&transformed(&["StaticEgress=true"]));
    let vpcs = on.of_type("AWS::EC2::VPC");
    let [vpc] = vpcs.iter().collect::<Vec<_>>()[..] else {
        panic!("one VPC: {vpcs:?}");
    };
    assert_eq!(on.properties(vpc)["EnableDnsSupport"], true);
    assert_eq!(on.properties(vpc)["EnableDnsHostnames"], true);
    let gateways = on.of_type("AWS::EC2::InternetGateway");
    assert_eq!(gateways.len(), 1, "{gateways:?}");
    let igw = gateways.first().unwrap();
    let attachments = on.of_type("AWS::EC2::VPCGatewayAttachment");
    assert_eq!(attachments.len(), 1);
    let attachment = on.properties(attachments.first().unwrap());
    assert_eq!(json_ref(&attachment["VpcId"]), *vpc);
    assert_eq!(json_ref(&attachment["InternetGatewayId"]), *igw);

    // Each subnet's default route, through its route table.
    let table_of: std::collections::BTreeMap<String, String> = on
        .of_type("AWS::EC2::SubnetRouteTableAssociation")
        .iter()
        .map(|a| {
            let p = on.properties(a);
            (json_ref(&p["SubnetId"]), json_ref(&p["RouteTableId"]))
        })
        .collect();
    let default_route = |table: &str| -> serde_json::Value {
        let routes: Vec<&serde_json::Value> = on
            .of_type("AWS::EC2::Route")
            .iter()
            .map(|r| on.properties(r))
            .filter(|p| json_ref(&p["RouteTableId"]) == table)
            .collect();
        assert_eq!(routes.len(), 1, "{table}: {routes:?}");
        assert_eq!(routes[0]["DestinationCidrBlock"], "0.0.0.0/0", "{table}");
        routes[0].clone()
    };
    let subnets = on.of_type("AWS::EC2::Subnet");
    assert_eq!(subnets.len(), 4, "{subnets:?}");
    let (mut public, mut private) = (BTreeSet::new(), BTreeSet::new());
    for subnet in &subnets {
        assert_eq!(json_ref(&on.properties(subnet)["VpcId"]), *vpc, "{subnet}");
        let table = table_of
            .get(subnet)
            .unwrap_or_else(|| panic!("{subnet} has no route table"));
        let route = default_route(table);
        if route.get("GatewayId").is_some() {
            assert_eq!(json_ref(&route["GatewayId"]), *igw, "{subnet}");
            public.insert(subnet.clone());
        } else {
            assert!(route.get("NatGatewayId").is_some(), "{subnet}: {route}");
            private.insert(subnet.clone());
        }
    }
    assert_eq!(
        (public.len(), private.len()),
        (2, 2),
        "{public:?} {private:?}"
    );
    // The zone of a subnet: the first or the second of the region's.
    let zone = |subnet: &str| -> u64 {
        let az = &on.properties(subnet)["AvailabilityZone"]["Fn::Select"];
        assert_eq!(az[1], json!({"Fn::GetAZs": ""}), "{subnet}");
        az[0]
            .as_u64()
            .unwrap_or_else(|| az[0].as_str().unwrap().parse().unwrap())
    };
    for group in [&public, &private] {
        let zones: BTreeSet<u64> = group.iter().map(|s| zone(s)).collect();
        assert_eq!(zones, BTreeSet::from([0, 1]), "{group:?}: two zones");
    }

    // A NAT gateway with its own Elastic IP in each public subnet.
    let nats = on.of_type("AWS::EC2::NatGateway");
    assert_eq!(nats.len(), 2, "{nats:?}");
    let mut nat_subnets = BTreeSet::new();
    let mut eips = BTreeSet::new();
    for nat in &nats {
        let p = on.properties(nat);
        let subnet = json_ref(&p["SubnetId"]);
        assert!(
            public.contains(&subnet),
            "{nat} is in {subnet}, not a public subnet"
        );
        nat_subnets.insert(subnet);
        let (eip, attribute) = json_get_att(&p["AllocationId"]);
        assert_eq!(attribute, "AllocationId", "{nat}");
        assert_eq!(on.resources[&eip]["Type"], "AWS::EC2::EIP", "{nat}");
        assert_eq!(on.properties(&eip)["Domain"], "vpc", "{eip}");
        eips.insert(eip);
    }
    assert_eq!(nat_subnets, public, "one NAT gateway per public subnet");
    assert_eq!(eips.len(), 2, "an Elastic IP each: {eips:?}");
    assert_eq!(on.of_type("AWS::EC2::EIP"), eips);
    // Each private subnet reaches the internet through its own zone's NAT gateway.
    let mut private_tables = BTreeSet::new();
    for subnet in &private {
        let table = &table_of[subnet];
        let nat = json_ref(&default_route(table)["NatGatewayId"]);
        assert!(nats.contains(&nat), "{subnet}: {nat}");
        let nat_subnet = json_ref(&on.properties(&nat)["SubnetId"]);
        assert_eq!(
            zone(subnet),
            zone(&nat_subnet),
            "{subnet} goes through {nat}"
        );
        private_tables.insert(table.clone());
    }
    assert_eq!(private_tables.len(), 2, "a route table per zone");

    // DynamoDB through a gateway endpoint on both private route tables.
    let endpoints = on.of_type("AWS::EC2::VPCEndpoint");
    assert_eq!(endpoints.len(), 1, "{endpoints:?}");
    let endpoint_name = endpoints.first().unwrap();
    let endpoint = on.properties(endpoint_name);
    assert_eq!(endpoint["VpcEndpointType"], "Gateway");
    assert_eq!(
        endpoint["ServiceName"],
        json!({"Fn::Sub": "com.amazonaws.${AWS::Region}.dynamodb"})
    );
    assert_eq!(json_ref(&endpoint["VpcId"]), *vpc);
    assert_eq!(json_refs(&endpoint["RouteTableIds"]), private_tables);

    // Every function in the private subnets, under one security group that
    // lets nothing in and waits for every way out; its role may attach it.
    let groups = on.of_type("AWS::EC2::SecurityGroup");
    assert_eq!(groups.len(), 1, "{groups:?}");
    let group = groups.first().unwrap();
    let sg = on.properties(group);
    assert_eq!(json_ref(&sg["VpcId"]), *vpc);
    assert!(sg.get("SecurityGroupIngress").is_none(), "{sg}");
    assert_eq!(
        sg["SecurityGroupEgress"],
        json!([{"IpProtocol": "-1", "CidrIp": "0.0.0.0/0"}])
    );
    let waits_for: BTreeSet<String> = on.resources[group]["DependsOn"]
        .as_array()
        .expect("DependsOn")
        .iter()
        .map(|d| d.as_str().unwrap().to_owned())
        .collect();
    // Every route out, the public subnets' included (the NAT gateways'
    // own way out), and the DynamoDB endpoint.
    let routes_out: BTreeSet<String> = on
        .of_type("AWS::EC2::Route")
        .into_iter()
        .chain(on.of_type("AWS::EC2::SubnetRouteTableAssociation"))
        .chain([endpoint_name.clone()])
        .collect();
    assert_eq!(routes_out.len(), 3 + 4 + 1, "{routes_out:?}");
    assert!(
        waits_for.is_superset(&routes_out),
        "{group} waits for {waits_for:?}, not all of {routes_out:?}"
    );
    let functions = on.of_type("AWS::Lambda::Function");
    assert_eq!(functions.len(), 2, "{functions:?}");
    for function in &functions {
        let p = on.properties(function);
        let vpc_config = &p["VpcConfig"];
        assert_eq!(json_refs(&vpc_config["SubnetIds"]), private, "{function}");
        assert_eq!(
            json_refs(&vpc_config["SecurityGroupIds"]),
            BTreeSet::from([group.clone()]),
            "{function}"
        );
        let (role, _) = json_get_att(&p["Role"]);
        let managed = &on.properties(&role)["ManagedPolicyArns"];
        assert!(
            managed.as_array().unwrap().contains(&json!(VPC_ACCESS)),
            "{function}'s role {role} may not make its network interfaces: {managed}"
        );
    }

    // The addresses: the stack's output, and what the api function answers.
    let output = &on.outputs["EgressIps"]["Value"]["Fn::Join"];
    assert_eq!(output[0], ",");
    let joined: Vec<(String, String)> = output[1]
        .as_array()
        .unwrap()
        .iter()
        .map(json_get_att)
        .collect();
    assert_eq!(joined.len(), 2, "{joined:?}");
    let named: BTreeSet<String> = joined
        .iter()
        .map(|(eip, attribute)| {
            assert_eq!(attribute, "PublicIp");
            eip.clone()
        })
        .collect();
    assert_eq!(
        named, eips,
        "the output names the NAT gateways' Elastic IPs"
    );
    let variables = |created: &Created, function: &str| {
        created.properties(function)["Environment"]["Variables"].clone()
    };
    assert_eq!(
        variables(&on, "ApiFunction")["EGRESS_IPS"],
        on.outputs["EgressIps"]["Value"],
        "the api function answers the output's addresses"
    );
    assert!(
        variables(&on, "DispatchFunction")
            .get("EGRESS_IPS")
            .is_none()
    );

    // The default: nothing of the above.
    let off = Created::of(&transformed(&[]));
    let ec2: Vec<&String> = off
        .resources
        .iter()
        .filter(|(_, r)| r["Type"].as_str().unwrap().starts_with("AWS::EC2::"))
        .map(|(name, _)| name)
        .collect();
    assert!(
        ec2.is_empty(),
        "EC2 resources without StaticEgress: {ec2:?}"
    );
    let functions = off.of_type("AWS::Lambda::Function");
    assert_eq!(functions.len(), 2);
    for function in &functions {
        let p = off.properties(function);
        assert!(
            p.get("VpcConfig").is_none(),
            "{function}: {}",
            p["VpcConfig"]
        );
        // SAM attaches the VPC policy whenever VpcConfig is present, even as
        // an Fn::If that leaves it out (docs/operations.md says so): if this
        // fails, SAM stopped, and the document should say that instead.
        let (role, _) = json_get_att(&p["Role"]);
        let managed = &off.properties(&role)["ManagedPolicyArns"];
        assert!(
            managed.as_array().unwrap().contains(&json!(VPC_ACCESS)),
            "{role}"
        );
    }
    assert!(off.outputs.get("EgressIps").is_none());
    assert_eq!(variables(&off, "ApiFunction")["EGRESS_IPS"], "");
}
