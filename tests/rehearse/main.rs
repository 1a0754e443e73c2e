//! The deployment rehearsal: the artifacts `sam build` made, run as Lambda
//! runs them (a Runtime API on loopback), with the environment the
//! SAM-transformed template gives them and, on a moto that enforces IAM,
//! only the actions their roles allow. `scripts/rehearse` prepares moto and
//! the IAM users, then runs this.
//!
//! webhooks-rehearse --template T.json --iam iam.json --build-dir .aws-sam/build
//!                   --endpoint http://127.0.0.1:PORT --logs DIR [--only dispatch] [--floor BIN]

mod api_gateway;
mod environment;
mod runtime;
mod scenarios;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use aws_sdk_dynamodb::config::{Credentials, Region};
use serde_json::Value;

use environment::{Created, FUNCTIONS};
use runtime::Function;

/// Where the rehearsal runs everything: moto's default account.
pub const REGION: &str = "eu-west-1";

struct Options {
    template: PathBuf,
    iam: PathBuf,
    build_dir: PathBuf,
    endpoint: String,
    logs: PathBuf,
    only_dispatch: bool,
    floor: Option<PathBuf>,
}

fn options() -> Result<Options, String> {
    let mut args = std::env::args().skip(1);
    let (mut template, mut iam, mut build_dir, mut endpoint, mut logs, mut floor) =
        (None, None, None, None, None, None);
    let mut only_dispatch = false;
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--template" => template = Some(PathBuf::from(value()?)),
            "--iam" => iam = Some(PathBuf::from(value()?)),
            "--build-dir" => build_dir = Some(PathBuf::from(value()?)),
            "--endpoint" => endpoint = Some(value()?),
            "--logs" => logs = Some(PathBuf::from(value()?)),
            "--floor" => floor = Some(PathBuf::from(value()?)),
            "--only" => match value()?.as_str() {
                "dispatch" => only_dispatch = true,
                other => return Err(format!("--only {other}: only `dispatch` is known")),
            },
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(Options {
        template: template.ok_or("--template is required")?,
        iam: iam.ok_or("--iam is required")?,
        build_dir: build_dir.ok_or("--build-dir is required")?,
        endpoint: endpoint.ok_or("--endpoint is required")?,
        logs: logs.ok_or("--logs is required")?,
        only_dispatch,
        floor,
    })
}

/// Keys of one IAM user from `scripts/rehearse_iam.py`.
pub struct Keys {
    pub key: String,
    pub secret: String,
}

fn keys(v: &Value) -> Result<Keys, String> {
    Ok(Keys {
        key: v["key"].as_str().ok_or("no key")?.to_owned(),
        secret: v["secret"].as_str().ok_or("no secret")?.to_owned(),
    })
}

fn read_json(path: &PathBuf) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// The SDK configuration of the rehearsal's own calls (setup and checks):
/// the admin user's keys.
pub async fn admin_config(endpoint: &str, admin: &Keys) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new(
            &admin.key,
            &admin.secret,
            None,
            None,
            "rehearsal",
        ))
        .load()
        .await
}

/// The table and queues, created as the template declares them, and what
/// each logical id resolves to.
async fn create_resources(config: &aws_config::SdkConfig) -> Result<(Created, Names), String> {
    let dynamo = aws_sdk_dynamodb::Client::new(config);
    let sqs = aws_sdk_sqs::Client::new(config);
    let table = "rehearsal-table";
    shared::store::create_table(&dynamo, table)
        .await
        .map_err(|e| format!("creating the table: {e}"))?;
    let table_arn = dynamo
        .describe_table()
        .table_name(table)
        .send()
        .await
        .map_err(|e| {
            format!(
                "DescribeTable: {}",
                aws_sdk_dynamodb::error::DisplayErrorContext(e)
            )
        })?
        .table
        .and_then(|t| t.table_arn)
        .ok_or("DescribeTable: no ARN")?;
    let queues = shared::infra::create_queues(&sqs, "rehearsal-events", 5).await?;
    let mut created = Created::default();
    created.add("Table", table, &[("Arn", &table_arn)]);
    let mut names = Names {
        table: table.to_owned(),
        events_url: queues.events.clone(),
        slow_url: queues.slow.clone(),
        events_arn: String::new(),
        slow_arn: String::new(),
    };
    for (id, url) in [
        ("EventsQueue", &queues.events),
        ("SlowQueue", &queues.slow),
        ("EventsDeadLetterQueue", &queues.dead_letter),
    ] {
        let arn = sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "GetQueueAttributes: {}",
                    aws_sdk_sqs::error::DisplayErrorContext(e)
                )
            })?
            .attributes
            .and_then(|mut a| a.remove(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
            .ok_or("no queue ARN")?;
        let name = url.rsplit('/').next().unwrap_or_default();
        created.add(id, url, &[("Arn", &arn), ("QueueName", name)]);
        match id {
            "EventsQueue" => names.events_arn = arn,
            "SlowQueue" => names.slow_arn = arn,
            _ => {}
        }
    }
    Ok((created, names))
}

/// What the scenarios need to know of the created resources.
pub struct Names {
    pub table: String,
    pub events_url: String,
    pub events_arn: String,
    pub slow_url: String,
    pub slow_arn: String,
}

/// The template as a deployment with these parameter values sees it
/// (`sam deploy --parameter-overrides`): each must be a parameter the
/// template declares, and the value stands in for its default.
fn with_parameters(template: &Value, overrides: &[(&str, &str)]) -> Result<Value, String> {
    let mut template = template.clone();
    for (name, value) in overrides {
        let parameter = template["Parameters"]
            .get_mut(*name)
            .ok_or_else(|| format!("the template has no parameter {name}"))?;
        parameter["Default"] = Value::String((*value).to_owned());
    }
    Ok(template)
}

/// The second dispatch function's parameters: a failing streak disables
/// its webhook after 2 s rather than five days, so that the rehearsal sees
/// the disable (with the same artifact, role and every other variable).
const QUICK_DISABLE: &[(&str, &str)] = &[("AutoDisableAfterSeconds", "2")];

/// Starts one function's artifact with its environment and IAM user, as
/// `name` (its process's function name and its log's).
async fn start(
    o: &Options,
    template: &Value,
    iam: &Value,
    created: &Created,
    logical_id: &str,
    name: &str,
) -> Result<Function, String> {
    let which = FUNCTIONS
        .iter()
        .find(|(id, _)| *id == logical_id)
        .map(|(_, f)| *f)
        .ok_or_else(|| format!("{logical_id} is not a function the code knows"))?;
    let mut env: Vec<(String, String)> =
        environment::variables(template, logical_id, which, created)?
            .into_iter()
            .collect();
    let user = keys(&iam["functions"][logical_id]).map_err(|e| format!("{logical_id}: {e}"))?;
    env.extend([
        ("AWS_ACCESS_KEY_ID".to_owned(), user.key),
        ("AWS_SECRET_ACCESS_KEY".to_owned(), user.secret),
        ("AWS_REGION".to_owned(), REGION.to_owned()),
        ("AWS_DEFAULT_REGION".to_owned(), REGION.to_owned()),
        // The two additions to the template's variables: AWS's endpoints are
        // moto's, and the receivers are on loopback.
        ("AWS_ENDPOINT_URL".to_owned(), o.endpoint.clone()),
        ("ALLOW_PRIVATE_TARGETS".to_owned(), "true".to_owned()),
    ]);
    let properties = environment::function(template, logical_id)?;
    let timeout = Duration::from_secs(properties["Timeout"].as_u64().ok_or("no Timeout")?);
    // A number, or a Ref to a parameter (its default).
    let memory = environment::resolve(
        template,
        &properties["MemorySize"],
        &environment::Created::default(),
    )
    .ok()
    .and_then(|m| m.parse::<u64>().ok())
    .ok_or_else(|| format!("{logical_id}: no MemorySize"))?;
    let bootstrap = o.build_dir.join(logical_id).join("bootstrap");
    if !bootstrap.exists() {
        return Err(format!(
            "{} is missing: run scripts/sam-build first",
            bootstrap.display()
        ));
    }
    Function::start(
        name,
        &bootstrap,
        &env,
        memory,
        timeout,
        o.logs.join(format!("{name}.log")),
    )
    .await
}

async fn run(o: Options) -> Result<scenarios::Report, String> {
    let template = read_json(&o.template)?;
    let iam = read_json(&o.iam)?;
    std::fs::create_dir_all(&o.logs).map_err(|e| e.to_string())?;
    let admin = keys(&iam["admin"])?;
    let config = admin_config(&o.endpoint, &admin).await;
    let (created, names) = create_resources(&config).await?;
    let mut report = scenarios::Report::default();
    let api = if o.only_dispatch {
        None
    } else {
        let api = start(&o, &template, &iam, &created, "ApiFunction", "ApiFunction").await?;
        let quick = with_parameters(&template, QUICK_DISABLE)?;
        let disabling = start(
            &o,
            &quick,
            &iam,
            &created,
            "DispatchFunction",
            "DispatchFunctionQuickDisable",
        )
        .await?;
        Some((api, disabling))
    };
    let dispatch = start(
        &o,
        &template,
        &iam,
        &created,
        "DispatchFunction",
        "DispatchFunction",
    )
    .await?;
    let mut world = scenarios::World::new(&config, names).await?;
    match api {
        Some((mut api, mut disabling)) => {
            let mut dispatch = dispatch;
            scenarios::api_and_dispatch(
                &mut world,
                &mut api,
                &mut dispatch,
                &mut disabling,
                &mut report,
            )
            .await;
            report.logs.push(api.log.clone());
            report.logs.push(dispatch.log.clone());
            report.logs.push(disabling.log.clone());
        }
        None => {
            let mut dispatch = dispatch;
            scenarios::dispatch_only(&mut world, &mut dispatch, &mut report).await;
            report.logs.push(dispatch.log.clone());
        }
    }
    if let Some(floor) = &o.floor {
        scenarios::floor(floor, &o.logs, &mut report).await;
    }
    report.secrets = world.secrets();
    Ok(report)
}

#[tokio::main]
async fn main() -> ExitCode {
    let o = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("webhooks-rehearse: {e}");
            return ExitCode::from(2);
        }
    };
    match run(o).await {
        Ok(report) => report.finish(),
        Err(e) => {
            eprintln!("webhooks-rehearse: FAIL: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// An override stands in for the parameter's default, as the
    /// environment resolves it; a parameter the template lacks is refused
    /// (a renamed parameter must not leave the rehearsal on the default).
    #[test]
    fn a_parameter_override_replaces_the_default() {
        let template = json!({"Parameters": {"AutoDisableAfterSeconds": {"Type": "Number", "Default": 432000}}});
        let quick = with_parameters(&template, QUICK_DISABLE).unwrap();
        let value = json!({"Ref": "AutoDisableAfterSeconds"});
        assert_eq!(
            environment::resolve(&quick, &value, &Created::default()).unwrap(),
            "2"
        );
        assert_eq!(
            environment::resolve(&template, &value, &Created::default()).unwrap(),
            "432000"
        );
        assert!(with_parameters(&template, &[("NoSuchParameter", "1")]).is_err());
    }
}
