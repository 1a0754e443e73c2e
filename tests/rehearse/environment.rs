//! Each function's environment, computed from the SAM-transformed template:
//! `Ref`, `Fn::GetAtt` and `Fn::Sub` of the table and queues resolve to the
//! resources the rehearsal created on moto, parameters to their defaults.
//! The variables the template sets must be the ones `shared::settings::VARIABLES`
//! says that function needs.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::Value;
use shared::settings::{Function, VARIABLES};

/// What a logical id of the template stands for once created: its `Ref`
/// value and its attributes.
#[derive(Default)]
pub struct Created {
    pub refs: HashMap<String, String>,
    pub attributes: HashMap<(String, String), String>,
}

impl Created {
    pub fn add(&mut self, logical_id: &str, reference: &str, attributes: &[(&str, &str)]) {
        self.refs
            .insert(logical_id.to_owned(), reference.to_owned());
        for (name, value) in attributes {
            self.attributes.insert(
                (logical_id.to_owned(), (*name).to_owned()),
                (*value).to_owned(),
            );
        }
    }
}

/// The template's function resources, by the name the code knows them by.
pub const FUNCTIONS: &[(&str, Function)] = &[
    ("ApiFunction", Function::Api),
    ("DispatchFunction", Function::Dispatch),
];

/// A function's resource in the transformed template.
pub fn function<'t>(template: &'t Value, logical_id: &str) -> Result<&'t Value, String> {
    template["Resources"]
        .get(logical_id)
        .map(|r| &r["Properties"])
        .ok_or_else(|| format!("the template has no {logical_id}"))
}

/// The function's variables, resolved; fails naming every variable the
/// template sets that the code does not expect for it, and every one it
/// expects that the template leaves out.
pub fn variables(
    template: &Value,
    logical_id: &str,
    which: Function,
    created: &Created,
) -> Result<BTreeMap<String, String>, String> {
    let set = function(template, logical_id)?["Environment"]["Variables"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let expected: BTreeSet<&str> = VARIABLES
        .iter()
        .filter(|v| v.set_for.contains(&which))
        .map(|v| v.name)
        .collect();
    let given: BTreeSet<&str> = set.keys().map(String::as_str).collect();
    let missing: Vec<&str> = expected.difference(&given).copied().collect();
    let unexpected: Vec<&str> = given.difference(&expected).copied().collect();
    if !missing.is_empty() || !unexpected.is_empty() {
        return Err(format!(
            "{logical_id}: the template does not set {missing:?}, which the code reads; \
             it sets {unexpected:?}, which shared::settings::VARIABLES does not list for it"
        ));
    }
    set.iter()
        .map(|(name, value)| {
            resolve(template, value, created)
                .map(|v| (name.clone(), v))
                .map_err(|e| format!("{logical_id}: {name}: {e}"))
        })
        .collect()
}

/// One value of the template, resolved.
pub fn resolve(template: &Value, value: &Value, created: &Created) -> Result<String, String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Object(o) if o.contains_key("Ref") => {
            let name = o["Ref"].as_str().unwrap_or_default();
            if let Some(parameter) = template["Parameters"].get(name) {
                return resolve(template, &parameter["Default"], created)
                    .map_err(|_| format!("parameter {name} has no default"));
            }
            created
                .refs
                .get(name)
                .cloned()
                .ok_or_else(|| format!("Ref {name}: not a resource the rehearsal created"))
        }
        Value::Object(o) if o.contains_key("Fn::GetAtt") => {
            let parts: Vec<&str> = match &o["Fn::GetAtt"] {
                Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                Value::String(s) => s.splitn(2, '.').collect(),
                _ => Vec::new(),
            };
            let [id, attribute] = parts[..] else {
                return Err(format!("malformed Fn::GetAtt {o:?}"));
            };
            created
                .attributes
                .get(&(id.to_owned(), attribute.to_owned()))
                .cloned()
                .ok_or_else(|| format!("Fn::GetAtt {id}.{attribute}: not created"))
        }
        Value::Object(o) if o.contains_key("Fn::If") => {
            let Some([Value::String(name), then, otherwise]) =
                o["Fn::If"].as_array().map(Vec::as_slice)
            else {
                return Err(format!("malformed Fn::If {o:?}"));
            };
            let chosen = if condition(template, name, created)? {
                then
            } else {
                otherwise
            };
            resolve(template, chosen, created)
        }
        other => Err(format!("cannot resolve {other}")),
    }
}

/// A template condition, with parameters at their defaults.
fn condition(template: &Value, name: &str, created: &Created) -> Result<bool, String> {
    let body = template["Conditions"]
        .get(name)
        .ok_or_else(|| format!("no condition {name}"))?;
    truth(template, body, created)
}

/// `Fn::Equals`, `Fn::Not`, `Fn::And`, `Fn::Or` and `Condition`.
fn truth(template: &Value, body: &Value, created: &Created) -> Result<bool, String> {
    let Value::Object(o) = body else {
        return Err(format!("not a condition: {body}"));
    };
    let args = |key: &str| o[key].as_array().cloned().unwrap_or_default();
    if let Some(Value::String(name)) = o.get("Condition") {
        return condition(template, name, created);
    }
    if o.contains_key("Fn::Equals") {
        let [a, b] = &args("Fn::Equals")[..] else {
            return Err(format!("malformed Fn::Equals {o:?}"));
        };
        return Ok(resolve(template, a, created)? == resolve(template, b, created)?);
    }
    if o.contains_key("Fn::Not") {
        let [inner] = &args("Fn::Not")[..] else {
            return Err(format!("malformed Fn::Not {o:?}"));
        };
        return truth(template, inner, created).map(|t| !t);
    }
    for (key, all) in [("Fn::And", true), ("Fn::Or", false)] {
        if o.contains_key(key) {
            let mut results = Vec::new();
            for inner in args(key) {
                results.push(truth(template, &inner, created)?);
            }
            return Ok(if all {
                results.iter().all(|t| *t)
            } else {
                results.iter().any(|t| *t)
            });
        }
    }
    Err(format!("cannot evaluate the condition {body}"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// `Fn::If` takes the branch its condition picks with the parameters at
    /// their defaults: the edge's secret is empty unless `EdgeWebAclArn` is
    /// set, and set when it is.
    #[test]
    fn a_conditional_value_follows_the_default_parameters() {
        let template = |arn: &str| {
            json!({
                "Parameters": {"EdgeWebAclArn": {"Type": "String", "Default": arn}},
                "Conditions": {"HasEdge": {"Fn::Not": [{"Fn::Equals": [{"Ref": "EdgeWebAclArn"}, ""]}]}}
            })
        };
        let value = json!({"Fn::If": ["HasEdge", "secret", ""]});
        let created = Created::default();
        assert_eq!(resolve(&template(""), &value, &created).unwrap(), "");
        assert_eq!(
            resolve(&template("arn:aws:wafv2:x"), &value, &created).unwrap(),
            "secret"
        );
        let unknown = json!({"Fn::If": ["NoSuchCondition", "a", "b"]});
        assert!(resolve(&template(""), &unknown, &created).is_err());
    }
}
