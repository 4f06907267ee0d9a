//! Reads `template.yaml` and evaluates the intrinsic functions the stateful
//! resources use (`Ref`, `Fn::Sub`, `Fn::GetAtt`, `Fn::Join`, `Fn::FindInMap`),
//! so the local stack creates exactly what the template declares.

use std::collections::HashMap;

use serde_json::{Map, Value};
use serde_yaml_ng::Value as Yaml;

pub const ACCOUNT_ID: &str = "123456789012";

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("could not read {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("template is not valid YAML")]
    Yaml(#[from] serde_yaml_ng::Error),
    #[error("template has no Resources section")]
    NoResources,
    #[error("{0}")]
    Unsupported(String),
}

/// One resource of the template, its properties still unevaluated.
#[derive(Debug, Clone)]
pub struct Resource {
    pub logical_id: String,
    pub kind: String,
    pub properties: Value,
    /// `Metadata` (e.g. a function's `BuildProperties.Binary`).
    pub metadata: Value,
}

#[derive(Debug, Clone)]
pub struct Template {
    pub parameters: HashMap<String, Value>,
    pub mappings: Value,
    /// In template order.
    pub resources: Vec<Resource>,
    /// `Globals` and `Outputs`, unevaluated (for checks of the template itself).
    pub globals: Value,
    /// `Conditions`, evaluated when an `Fn::If` names one.
    pub conditions: Value,
    pub outputs: Value,
}

impl Template {
    pub fn load(path: &std::path::Path) -> Result<Self, TemplateError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| TemplateError::Read { path: path.display().to_string(), source })?;
        Self::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let yaml: Yaml = serde_yaml_ng::from_str(text)?;
        let doc = to_json(yaml);
        let parameters = doc
            .get("Parameters")
            .and_then(Value::as_object)
            .map(|params| {
                params
                    .iter()
                    .filter_map(|(name, spec)| {
                        let default = spec.get("Default")?.clone();
                        // A CommaDelimitedList's `Ref` is a list, as CloudFormation makes it.
                        let default = match (spec.get("Type").and_then(Value::as_str), default) {
                            (Some("CommaDelimitedList"), Value::String(list)) => Value::Array(
                                list.split(',').map(|item| Value::String(item.trim().to_owned())).collect(),
                            ),
                            (_, default) => default,
                        };
                        Some((name.clone(), default))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let resources = doc
            .get("Resources")
            .and_then(Value::as_object)
            .ok_or(TemplateError::NoResources)?
            .iter()
            .map(|(logical_id, spec)| Resource {
                logical_id: logical_id.clone(),
                kind: spec.get("Type").and_then(Value::as_str).unwrap_or_default().to_owned(),
                properties: spec.get("Properties").cloned().unwrap_or(Value::Object(Map::new())),
                metadata: spec.get("Metadata").cloned().unwrap_or(Value::Null),
            })
            .collect();
        let section = |name: &str| doc.get(name).cloned().unwrap_or(Value::Null);
        Ok(Self {
            parameters,
            mappings: section("Mappings"),
            resources,
            globals: section("Globals"),
            conditions: section("Conditions"),
            outputs: section("Outputs"),
        })
    }

    /// Overrides a parameter (e.g. `Stage=local`).
    pub fn set_parameter(&mut self, name: &str, value: &str) {
        self.parameters.insert(name.to_owned(), Value::String(value.to_owned()));
    }

    /// A function's `Timeout` (its own, else `Globals.Function.Timeout`, else
    /// Lambda's default of 3 s): the deadline of each of its invocations.
    pub fn function_timeout(&self, logical_id: &str) -> Option<std::time::Duration> {
        let function = self.resources.iter().find(|r| r.logical_id == logical_id)?;
        let seconds = function.properties.get("Timeout").or_else(|| self.globals["Function"].get("Timeout"));
        let seconds = match seconds {
            Some(value) => value.as_u64()?,
            None => 3,
        };
        Some(std::time::Duration::from_secs(seconds))
    }

    pub fn resources_of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Resource> + 'a {
        self.resources.iter().filter(move |r| r.kind == kind)
    }
}

/// YAML (with CloudFormation's short-form tags) to JSON with long-form intrinsics.
fn to_json(yaml: Yaml) -> Value {
    match yaml {
        Yaml::Null => Value::Null,
        Yaml::Bool(b) => Value::Bool(b),
        Yaml::Number(n) => serde_json::to_value(&n).unwrap_or(Value::Null),
        Yaml::String(s) => Value::String(s),
        Yaml::Sequence(items) => Value::Array(items.into_iter().map(to_json).collect()),
        Yaml::Mapping(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let key = match k {
                        Yaml::String(s) => s,
                        other => serde_yaml_ng::to_string(&other).unwrap_or_default().trim().to_owned(),
                    };
                    (key, to_json(v))
                })
                .collect(),
        ),
        Yaml::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let name = tag.trim_start_matches('!');
            let value = to_json(tagged.value);
            let value = match (name, value) {
                ("GetAtt", Value::String(dotted)) => {
                    let (resource, attribute) = dotted.split_once('.').unwrap_or((&dotted, ""));
                    Value::from(vec![resource.to_owned(), attribute.to_owned()])
                }
                (_, value) => value,
            };
            let long =
                if name == "Ref" || name == "Condition" { name.to_owned() } else { format!("Fn::{name}") };
            Value::Object(Map::from_iter([(long, value)]))
        }
    }
}

/// The attribute of a created secret that holds its value (not a `GetAtt`
/// CloudFormation offers: only dynamic references read it).
pub const SECRET_STRING: &str = "SecretString";

/// What a created resource answers to `Ref` and `Fn::GetAtt`.
#[derive(Debug, Clone, Default)]
pub struct Physical {
    pub reference: String,
    pub attributes: HashMap<String, String>,
}

/// Evaluation stopped on a resource that does not exist yet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    #[error("waits for resource {0}")]
    Pending(String),
    #[error("{0}")]
    Invalid(String),
}

pub struct Context<'a> {
    pub template: &'a Template,
    pub region: &'a str,
    pub created: &'a HashMap<String, Physical>,
}

impl Context<'_> {
    pub fn eval(&self, value: &Value) -> Result<Value, EvalError> {
        match value {
            // A list item set to AWS::NoValue is left out, as CloudFormation does.
            Value::Array(items) => {
                let evaluated = items.iter().map(|v| self.eval(v)).collect::<Result<Vec<_>, _>>()?;
                Ok(Value::Array(evaluated.into_iter().filter(|v| !v.is_null()).collect()))
            }
            Value::Object(map) if map.len() == 1 => {
                let (key, arg) = map.iter().next().ok_or_else(|| EvalError::Invalid("empty map".into()))?;
                match key.as_str() {
                    // A property set to AWS::NoValue is left out (see `eval_object`).
                    "Ref" if arg == "AWS::NoValue" => Ok(Value::Null),
                    "Ref" => {
                        let name = arg.as_str().unwrap_or_default();
                        match self.template.parameters.get(name) {
                            // A CommaDelimitedList parameter is a list wherever it is referenced.
                            Some(list @ Value::Array(_)) => Ok(list.clone()),
                            _ => self.reference(name).map(Value::String),
                        }
                    }
                    "Fn::If" => match arg.as_array().map(Vec::as_slice) {
                        Some([Value::String(condition), then, otherwise]) => {
                            self.eval(if self.condition(condition)? { then } else { otherwise })
                        }
                        _ => Err(EvalError::Invalid(format!("malformed Fn::If {arg}"))),
                    },
                    "Fn::GetAtt" => self.get_att(arg).map(Value::String),
                    "Fn::Sub" => {
                        self.sub(arg).and_then(|text| self.resolve_secrets(&text)).map(Value::String)
                    }
                    "Fn::Join" => self.join(arg).map(Value::String),
                    "Fn::FindInMap" => self.find_in_map(arg),
                    other if other.starts_with("Fn::") => {
                        Err(EvalError::Invalid(format!("the local stack does not evaluate {other}")))
                    }
                    _ => self.eval_object(map),
                }
            }
            Value::Object(map) => self.eval_object(map),
            Value::String(text) => self.resolve_secrets(text).map(Value::String),
            scalar => Ok(scalar.clone()),
        }
    }

    fn eval_object(&self, map: &Map<String, Value>) -> Result<Value, EvalError> {
        let mut evaluated = Map::new();
        for (key, value) in map {
            match self.eval(value)? {
                Value::Null => {}
                value => {
                    evaluated.insert(key.clone(), value);
                }
            }
        }
        Ok(Value::Object(evaluated))
    }

    /// A named condition of `Conditions`.
    fn condition(&self, name: &str) -> Result<bool, EvalError> {
        let condition = self
            .template
            .conditions
            .get(name)
            .ok_or_else(|| EvalError::Invalid(format!("no condition {name}")))?;
        self.truth(condition)
    }

    /// `Fn::Equals`, `Fn::Not`, `Fn::And`, `Fn::Or` and `Condition`.
    fn truth(&self, value: &Value) -> Result<bool, EvalError> {
        let malformed = || EvalError::Invalid(format!("malformed condition {value}"));
        let (key, arg) = value.as_object().and_then(|m| m.iter().next()).ok_or_else(malformed)?;
        let items = || arg.as_array().ok_or_else(malformed);
        match key.as_str() {
            "Fn::Equals" => match items()?.as_slice() {
                [a, b] => Ok(scalar_text(&self.eval(a)?) == scalar_text(&self.eval(b)?)),
                _ => Err(malformed()),
            },
            "Fn::Not" => match items()?.as_slice() {
                [inner] => Ok(!self.truth(inner)?),
                _ => Err(malformed()),
            },
            "Fn::And" => items()?.iter().try_fold(true, |all, c| Ok(all && self.truth(c)?)),
            "Fn::Or" => items()?.iter().try_fold(false, |any, c| Ok(any || self.truth(c)?)),
            "Condition" => self.condition(arg.as_str().ok_or_else(malformed)?),
            _ => Err(malformed()),
        }
    }

    fn reference(&self, name: &str) -> Result<String, EvalError> {
        match name {
            "AWS::Region" => return Ok(self.region.to_owned()),
            "AWS::AccountId" => return Ok(ACCOUNT_ID.to_owned()),
            "AWS::Partition" => return Ok("aws".to_owned()),
            "AWS::StackName" => return Ok("picasso-local".to_owned()),
            "AWS::URLSuffix" => return Ok("amazonaws.com".to_owned()),
            _ => {}
        }
        if let Some(value) = self.template.parameters.get(name) {
            return Ok(scalar_text(value));
        }
        match self.created.get(name) {
            Some(physical) => Ok(physical.reference.clone()),
            None if self.template.resources.iter().any(|r| r.logical_id == name) => {
                Err(EvalError::Pending(name.to_owned()))
            }
            None => Err(EvalError::Invalid(format!("Ref to unknown name {name}"))),
        }
    }

    fn get_att(&self, arg: &Value) -> Result<String, EvalError> {
        let parts: Vec<&str> =
            arg.as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
        let [resource, attribute] = parts[..] else {
            return Err(EvalError::Invalid(format!("malformed Fn::GetAtt {arg}")));
        };
        let physical = self.created.get(resource).ok_or_else(|| EvalError::Pending(resource.to_owned()))?;
        physical
            .attributes
            .get(attribute)
            .cloned()
            .ok_or_else(|| EvalError::Invalid(format!("{resource} has no attribute {attribute} locally")))
    }

    /// Dynamic references to a secret of this stack,
    /// `{{resolve:secretsmanager:<arn or name>:SecretString}}`, replaced by the
    /// secret's value as CloudFormation does at deploy (the value the
    /// provisioning generated for it: see `provision.rs`).
    fn resolve_secrets(&self, text: &str) -> Result<String, EvalError> {
        const OPEN: &str = "{{resolve:secretsmanager:";
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find(OPEN) {
            out.push_str(&rest[..start]);
            let after = &rest[start + OPEN.len()..];
            let end =
                after.find("}}").ok_or_else(|| EvalError::Invalid(format!("unclosed {{{{ in {text}")))?;
            let secret_id = after[..end].strip_suffix(":SecretString").ok_or_else(|| {
                EvalError::Invalid(format!(
                    "the local stack resolves only ...:SecretString references, not {text}"
                ))
            })?;
            let value = self
                .created
                .values()
                .find(|created| {
                    created.reference == secret_id
                        || created.attributes.get("Name").map(String::as_str) == Some(secret_id)
                })
                .and_then(|created| created.attributes.get(SECRET_STRING))
                .ok_or_else(|| EvalError::Invalid(format!("no secret {secret_id} in this stack")))?;
            out.push_str(value);
            rest = &after[end + 2..];
        }
        out.push_str(rest);
        Ok(out)
    }

    fn sub(&self, arg: &Value) -> Result<String, EvalError> {
        let (text, vars) = match arg {
            Value::String(text) => (text.as_str(), Map::new()),
            Value::Array(items) => match (items.first(), items.get(1)) {
                (Some(Value::String(text)), Some(Value::Object(vars))) => (text.as_str(), vars.clone()),
                _ => return Err(EvalError::Invalid(format!("malformed Fn::Sub {arg}"))),
            },
            _ => return Err(EvalError::Invalid(format!("malformed Fn::Sub {arg}"))),
        };
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after.find('}').ok_or_else(|| EvalError::Invalid(format!("unclosed ${{ in {text}")))?;
            let name = &after[..end];
            let value = if let Some(literal) = name.strip_prefix('!') {
                format!("${{{literal}}}")
            } else if let Some(value) = vars.get(name) {
                scalar_text(&self.eval(value)?)
            } else if let Some((resource, attribute)) =
                name.split_once('.').filter(|_| !name.starts_with("AWS::"))
            {
                self.get_att(&Value::from(vec![resource, attribute]))?
            } else {
                self.reference(name)?
            };
            out.push_str(&value);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    fn join(&self, arg: &Value) -> Result<String, EvalError> {
        let evaluated = self.eval(arg)?;
        match evaluated.as_array().map(Vec::as_slice) {
            Some([Value::String(separator), Value::Array(items)]) => {
                Ok(items.iter().map(scalar_text).collect::<Vec<_>>().join(separator))
            }
            _ => Err(EvalError::Invalid(format!("malformed Fn::Join {arg}"))),
        }
    }

    fn find_in_map(&self, arg: &Value) -> Result<Value, EvalError> {
        let keys = self.eval(arg)?;
        let keys: Vec<String> =
            keys.as_array().map(|a| a.iter().map(scalar_text).collect()).unwrap_or_default();
        let [map, top, second] = &keys[..] else {
            return Err(EvalError::Invalid(format!("malformed Fn::FindInMap {arg}")));
        };
        self.template
            .mappings
            .get(map)
            .and_then(|m| m.get(top))
            .and_then(|m| m.get(second))
            .cloned()
            .ok_or_else(|| EvalError::Invalid(format!("no mapping {map}.{top}.{second}")))
    }
}

/// A scalar as CloudFormation substitutes it into a string.
pub fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TEMPLATE: &str = r#"
Parameters:
  Stage: {Type: String, Default: staging}
  Bucket: {Type: String, Default: my-bucket}
Mappings:
  Sizes: {local: {Memory: 128}}
Resources:
  Queue:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Sub picasso-${Stage}
      Redrive: !GetAtt Dlq.Arn
      Size: !FindInMap [Sizes, !Ref Stage, Memory]
      Joined: !Join ["/", [!Ref Bucket, "x"]]
      Long: {"Fn::Sub": ["${Name}-${AWS::Region}", {Name: !Ref Bucket}]}
  Dlq:
    Type: AWS::SQS::Queue
"#;

    #[test]
    fn fn_if_follows_its_condition_and_no_value_leaves_the_property_or_list_item_out() {
        let mut template = Template::parse(
            r#"
Parameters:
  Topic: {Type: String, Default: ""}
  Limit: {Type: Number, Default: -1}
Conditions:
  Notify: !Not [!Equals [!Ref Topic, ""]]
  Limited: !And [!Not [!Equals [!Ref Limit, -1]], !Condition Notify]
Resources:
  Alarm:
    Type: AWS::CloudWatch::Alarm
    Properties:
      AlarmActions: !If [Notify, [!Ref Topic], !Ref AWS::NoValue]
      Reserved: !If [Limited, !Ref Limit, 0]
      Indexes: [first, !If [Notify, second, !Ref AWS::NoValue]]
"#,
        )
        .unwrap();
        let eval = |template: &Template| {
            let created = HashMap::new();
            let context = Context { template, region: "us-east-1", created: &created };
            context.eval(&template.resources[0].properties).unwrap()
        };
        assert_eq!(eval(&template), json!({"Reserved": 0, "Indexes": ["first"]}));
        template.set_parameter("Topic", "arn:aws:sns:us-east-1:1:t");
        template.set_parameter("Limit", "5");
        assert_eq!(
            eval(&template),
            json!({"AlarmActions": ["arn:aws:sns:us-east-1:1:t"], "Reserved": "5", "Indexes": ["first", "second"]})
        );
    }

    #[test]
    fn short_and_long_form_intrinsics_evaluate_against_parameters_and_resources() {
        let mut template = Template::parse(TEMPLATE).unwrap();
        template.set_parameter("Stage", "local");
        let mut created = HashMap::new();
        let context = Context { template: &template, region: "us-east-1", created: &created };
        let queue = &template.resources[0];
        assert_eq!(context.eval(&queue.properties), Err(EvalError::Pending("Dlq".into())));

        created.insert(
            "Dlq".to_owned(),
            Physical {
                reference: "url".into(),
                attributes: HashMap::from([("Arn".into(), "arn:dlq".into())]),
            },
        );
        let context = Context { template: &template, region: "us-east-1", created: &created };
        assert_eq!(
            context.eval(&queue.properties).unwrap(),
            json!({"QueueName": "picasso-local", "Redrive": "arn:dlq", "Size": 128,
                   "Joined": "my-bucket/x", "Long": "my-bucket-us-east-1"})
        );
    }

    #[test]
    fn a_dynamic_reference_to_a_secret_of_the_stack_resolves_to_its_value() {
        let template = Template::parse(
            r#"
Resources:
  Key:
    Type: AWS::SecretsManager::Secret
    Properties:
      Name: picasso-visitor-key-local
  Function:
    Type: AWS::Serverless::Function
    Properties:
      Environment:
        Variables:
          BY_ARN: !Sub "{{resolve:secretsmanager:${Key}:SecretString}}"
          BY_NAME: "{{resolve:secretsmanager:picasso-visitor-key-local:SecretString}}"
          JSON_KEY: "{{resolve:secretsmanager:picasso-visitor-key-local:SecretString:password}}"
"#,
        )
        .unwrap();
        let mut created = HashMap::new();
        created.insert(
            "Key".to_owned(),
            Physical {
                reference:
                    "arn:aws:secretsmanager:us-east-1:123456789012:secret:picasso-visitor-key-local-local"
                        .into(),
                attributes: HashMap::from([
                    ("Name".into(), "picasso-visitor-key-local".into()),
                    (SECRET_STRING.into(), "s3cr3t".into()),
                ]),
            },
        );
        let context = Context { template: &template, region: "us-east-1", created: &created };
        let variables = &template.resources[1].properties["Environment"]["Variables"];
        assert_eq!(context.eval(&variables["BY_ARN"]).unwrap(), json!("s3cr3t"));
        assert_eq!(context.eval(&variables["BY_NAME"]).unwrap(), json!("s3cr3t"));
        let unsupported = context.eval(&variables["JSON_KEY"]).unwrap_err();
        assert!(unsupported.to_string().contains("SecretString"), "{unsupported}");
    }

    #[test]
    fn resources_keep_template_order_and_kind() {
        let template = Template::parse(TEMPLATE).unwrap();
        let kinds: Vec<_> =
            template.resources.iter().map(|r| (r.logical_id.as_str(), r.kind.as_str())).collect();
        assert_eq!(kinds, [("Queue", "AWS::SQS::Queue"), ("Dlq", "AWS::SQS::Queue")]);
    }
}
