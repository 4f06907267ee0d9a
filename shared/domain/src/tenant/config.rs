//! The typed tenant config. Production configs were written by hand and by
//! several generations of tooling, so parsing is deliberately tolerant of
//! shape (aliases, shorthand forms, unknown keys) and strict about types: a
//! value of the wrong type is an error naming its key.

use indexmap::IndexMap;
use serde::{Deserialize, Deserializer, de::IntoDeserializer};
use serde_json::{Map, Value};

use crate::forms::Priority;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct TenantConfig {
    pub tenant_id: Option<String>,
    pub tenant_hash: Option<String>,
    pub chat_title: Option<String>,
    pub tone_prompt: Option<String>,
    pub model_id: Option<String>,
    pub fallback_model_id: Option<String>,
    #[serde(deserialize_with = "null_as_default")]
    pub aws: AwsSection,
    #[serde(deserialize_with = "null_as_default")]
    pub streaming: StreamingSection,
    pub send_confirmation_email: Option<bool>,
    pub default_fulfillment: Option<Fulfillment>,
    pub sms_monthly_limit: Option<u32>,
    #[serde(deserialize_with = "null_as_default")]
    pub allowed_origins: Vec<String>,
    #[serde(deserialize_with = "null_as_default")]
    pub rate_limits: RateLimits,
    #[serde(deserialize_with = "null_as_default")]
    pub conversational_forms: IndexMap<String, FormConfig>,
    #[serde(deserialize_with = "objects_only")]
    pub cta_definitions: IndexMap<String, CtaDefinition>,
    #[serde(deserialize_with = "null_as_default")]
    pub conversation_branches: IndexMap<String, ConversationBranch>,
    #[serde(deserialize_with = "null_as_default")]
    pub cta_settings: CtaSettings,
    /// Days a submission is kept (read leniently: `retention_days`).
    pub data_retention_days: Option<Value>,
    /// The tenant's prompt controls, kept whole and read leniently by chat-stream
    /// (`instructions`): a malformed one never fails a config load.
    pub bedrock_instructions: Option<Value>,
}

/// Submissions are kept a year unless the tenant says otherwise.
pub const DEFAULT_RETENTION_DAYS: u32 = 365;
/// The longest retention a tenant may set: ten years.
pub const MAX_RETENTION_DAYS: u32 = 3650;

impl TenantConfig {
    /// Days a submission is kept: `data_retention_days` (a whole number of
    /// days, 1 to 3650, or such a number as a string), else 365. A value out
    /// of range or of another type is the error, naming what it is; the caller
    /// keeps the default then, so no submission is refused for it.
    pub fn retention_days(&self) -> Result<u32, String> {
        let days = match &self.data_retention_days {
            None | Some(Value::Null) => return Ok(DEFAULT_RETENTION_DAYS),
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
            Some(_) => None,
        };
        match days {
            Some(days @ 1..) if days <= u64::from(MAX_RETENTION_DAYS) => Ok(days as u32),
            _ => Err(format!(
                "data_retention_days must be a whole number of days from 1 to {MAX_RETENTION_DAYS}"
            )),
        }
    }

    /// The tenant's model: `model_id`, else `aws.model_id`.
    pub fn model_id(&self) -> Option<&str> {
        self.model_id.as_deref().or(self.aws.model_id.as_deref())
    }

    pub fn knowledge_base_id(&self) -> Option<&str> {
        self.aws.knowledge_base_id.as_deref().filter(|id| !id.is_empty())
    }

    pub fn sends_confirmation_email(&self) -> bool {
        self.send_confirmation_email.unwrap_or(true)
    }

    /// Whether the applicant gets a confirmation of this form: the form's
    /// `notifications.applicant_confirmation.enabled` when it has one, else the
    /// tenant's `send_confirmation_email` (default true).
    pub fn confirms_applicant(&self, form: &FormConfig) -> bool {
        match form.notifications.as_ref().and_then(|n| n.applicant_confirmation.as_ref()) {
            Some(confirmation) => confirmation.enabled,
            None => self.sends_confirmation_email(),
        }
    }

    /// A form by its map key or its `form_id`.
    pub fn form(&self, key_or_id: &str) -> Option<&FormConfig> {
        self.form_entry(key_or_id).map(|(_, form)| form)
    }

    /// A form's downstream fulfillment: its own, else the tenant's `default_fulfillment`.
    pub fn fulfillment_of<'a>(&'a self, form: &'a FormConfig) -> Option<&'a Fulfillment> {
        form.fulfillment.as_ref().or(self.default_fulfillment.as_ref())
    }

    /// Who gets the team's notification email of a form: the enabled internal
    /// notification's `recipients`, else the fulfillment's `email_to`.
    pub fn team_email_recipients(&self, form: &FormConfig) -> Vec<String> {
        match self.internal_notification(form).filter(|i| !i.recipients.is_empty()) {
            Some(internal) => internal.recipients.clone(),
            None => self.fulfillment_of(form).map(|f| f.email_to.0.clone()).unwrap_or_default(),
        }
    }

    /// Who gets the team's SMS of a form: the enabled internal notification's
    /// `sms_recipients`, else the fulfillment's `sms_to`.
    pub fn team_sms_recipients(&self, form: &FormConfig) -> Vec<String> {
        match self.internal_notification(form).filter(|i| !i.sms_recipients.is_empty()) {
            Some(internal) => internal.sms_recipients.clone(),
            None => self.fulfillment_of(form).map(|f| f.sms_to.0.clone()).unwrap_or_default(),
        }
    }

    /// The form's internal notification, when enabled.
    pub fn internal_notification<'a>(&self, form: &'a FormConfig) -> Option<&'a InternalNotification> {
        form.notifications.as_ref().and_then(|n| n.internal.as_ref()).filter(|i| i.enabled)
    }

    /// A form and its map key, by map key or `form_id`.
    pub fn form_entry(&self, key_or_id: &str) -> Option<(&str, &FormConfig)> {
        let by_key = self.conversational_forms.get_key_value(key_or_id);
        by_key
            .or_else(|| {
                self.conversational_forms.iter().find(|(_, form)| form.form_id.as_deref() == Some(key_or_id))
            })
            .map(|(key, form)| (key.as_str(), form))
    }
}

/// `rate_limits.*`: what one visitor (by source IP) and one tenant may use
/// of the public endpoints. Every key is optional; `0` refuses everything.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct RateLimits {
    pub chats_per_ip_per_minute: u32,
    pub submits_per_ip_per_minute: u32,
    /// `validate_field` runs as the visitor types: generous, but bounded.
    pub validations_per_ip_per_minute: u32,
    pub chats_per_minute: u32,
    pub submits_per_minute: u32,
    pub confirmations_per_recipient_per_day: u32,
    pub emails_per_month: u32,
    pub tokens_per_day: u64,
    /// Requests without an `Origin` header (server-to-server, curl).
    pub allow_no_origin: bool,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            chats_per_ip_per_minute: 20,
            submits_per_ip_per_minute: 5,
            validations_per_ip_per_minute: 120,
            chats_per_minute: 600,
            submits_per_minute: 120,
            confirmations_per_recipient_per_day: 3,
            emails_per_month: 5_000,
            tokens_per_day: 2_000_000,
            allow_no_origin: true,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct AwsSection {
    pub model_id: Option<String>,
    pub knowledge_base_id: Option<String>,
    pub aws_region: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct StreamingSection {
    pub max_tokens: u32,
    pub temperature: f32,
}

impl Default for StreamingSection {
    fn default() -> Self {
        Self { max_tokens: 1000, temperature: 0.0 }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct FormConfig {
    pub form_id: Option<String>,
    pub enabled: bool,
    pub title: Option<String>,
    pub description: Option<String>,
    pub cta_text: Option<String>,
    pub program: Option<String>,
    #[serde(deserialize_with = "null_as_default")]
    pub trigger_phrases: Vec<String>,
    #[serde(deserialize_with = "null_as_default")]
    pub fields: Vec<FieldConfig>,
    pub fulfillment: Option<Fulfillment>,
    #[serde(deserialize_with = "null_as_default")]
    pub priority_rules: Vec<PriorityRule>,
    #[serde(deserialize_with = "blank_as_none")]
    pub default_priority: Option<Priority>,
    pub notifications: Option<Notifications>,
    #[serde(deserialize_with = "null_as_default")]
    pub qualification_gates: Vec<QualificationGate>,
}

impl FormConfig {
    /// The id the widget and the submissions use: `form_id`, else the map key.
    pub fn id_or<'a>(&'a self, key: &'a str) -> &'a str {
        self.form_id.as_deref().unwrap_or(key)
    }
}

impl Default for FormConfig {
    fn default() -> Self {
        Self {
            form_id: None,
            enabled: true,
            title: None,
            description: None,
            cta_text: None,
            program: None,
            trigger_phrases: Vec::new(),
            fields: Vec::new(),
            fulfillment: None,
            priority_rules: Vec::new(),
            default_priority: None,
            notifications: None,
            qualification_gates: Vec::new(),
        }
    }
}

/// One form field. Older configs name fields with `name`, newer ones with `id`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct FieldConfig {
    pub id: Option<String>,
    pub name: Option<String>,
    #[serde(rename = "type")]
    pub field_type: FieldType,
    pub label: Option<String>,
    pub prompt: Option<String>,
    pub required: bool,
    #[serde(deserialize_with = "null_as_default")]
    pub options: Vec<FieldOption>,
    pub validation: Option<Validation>,
    pub min_length: Option<usize>,
    pub max_length: Option<usize>,
    pub eligibility_gate: bool,
    pub failure_message: Option<String>,
    #[serde(deserialize_with = "null_as_default")]
    pub subfields: Vec<FieldConfig>,
    pub conditional: Option<Conditional>,
}

impl Default for FieldConfig {
    fn default() -> Self {
        Self {
            id: None,
            name: None,
            field_type: FieldType::Text,
            label: None,
            prompt: None,
            required: true,
            options: Vec::new(),
            validation: None,
            min_length: None,
            max_length: None,
            eligibility_gate: false,
            failure_message: None,
            subfields: Vec::new(),
            conditional: None,
        }
    }
}

impl FieldConfig {
    /// The key of this field in `form_data`: `id`, else `name`.
    pub fn key(&self) -> Option<&str> {
        self.id.as_deref().or(self.name.as_deref())
    }
}

/// A field type; anything unknown (`currency`, `boolean`, ...) is validated as text.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum FieldType {
    #[default]
    Text,
    Email,
    Phone,
    Select,
    Textarea,
    Number,
    Date,
    Name,
    Address,
    Checkbox,
    Other(String),
}

impl<'de> Deserialize<'de> for FieldType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Ok(match raw.to_ascii_lowercase().as_str() {
            "text" => Self::Text,
            "email" => Self::Email,
            "phone" | "tel" => Self::Phone,
            "select" => Self::Select,
            "textarea" => Self::Textarea,
            "number" => Self::Number,
            "date" => Self::Date,
            "name" => Self::Name,
            "address" => Self::Address,
            "checkbox" => Self::Checkbox,
            _ => Self::Other(raw),
        })
    }
}

/// A select option: a plain string, or `{value, label}` (value may be a number).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldOption {
    pub value: String,
    pub label: Option<String>,
}

impl<'de> Deserialize<'de> for FieldOption {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Plain(Scalar),
            Labeled { value: Scalar, label: Option<String> },
        }
        Ok(match Raw::deserialize(deserializer)? {
            Raw::Plain(value) => Self { value: value.0, label: None },
            Raw::Labeled { value, label } => Self { value: value.0, label },
        })
    }
}

/// A string, number or boolean read as its text.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Scalar(String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::String(s) => Ok(Self(s)),
            Value::Number(n) => Ok(Self(n.to_string())),
            Value::Bool(b) => Ok(Self(b.to_string())),
            other => Err(serde::de::Error::custom(format!("expected a string or number, found {other}"))),
        }
    }
}

/// `validation`: an object of rules, or a shorthand string such as `email` or `min:10`.
#[derive(Debug, Clone, PartialEq)]
pub enum Validation {
    Shorthand(String),
    Rules(ValidationRules),
}

impl<'de> Deserialize<'de> for Validation {
    /// By hand rather than `untagged`, so a bad rule (an invalid `pattern`)
    /// is reported as itself instead of "matched no variant".
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::String(rule) => Ok(Self::Shorthand(rule)),
            rules @ Value::Object(_) => {
                ValidationRules::deserialize(rules).map(Self::Rules).map_err(serde::de::Error::custom)
            }
            other => {
                Err(serde::de::Error::custom(format!("expected a rule name or an object, found {other}")))
            }
        }
    }
}

/// A field's `validation.pattern`, compiled once when the config loads: an
/// invalid one fails the load, naming the form, the field and the key.
#[derive(Debug, Clone)]
pub struct Pattern(regex::Regex);

impl Pattern {
    pub fn is_match(&self, text: &str) -> bool {
        self.0.is_match(text)
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let pattern = String::deserialize(deserializer)?;
        regex::Regex::new(&pattern).map(Self).map_err(|err| {
            serde::de::Error::custom(format!(
                "`pattern` {pattern:?} is not a valid regular expression: {err}"
            ))
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ValidationRules {
    pub pattern: Option<Pattern>,
    pub message: Option<String>,
    pub min_length: Option<usize>,
    pub max_length: Option<usize>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Conditional {
    pub show_when: Option<String>,
    pub equals: Option<Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct QualificationGate {
    pub field: String,
    pub failure_response: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct PriorityRule {
    pub field: String,
    pub value: Option<Value>,
    #[serde(deserialize_with = "blank_as_none")]
    pub priority: Option<Priority>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Fulfillment {
    #[serde(rename = "type", deserialize_with = "blank_as_none")]
    pub kind: Option<FulfillmentKind>,
    pub function: Option<String>,
    pub action: Option<String>,
    pub bucket: Option<String>,
    pub webhook_url: Option<String>,
    pub email_to: Recipients,
    pub sms_to: Recipients,
}

/// Where handler-dispatch sends a submission (`fulfillment.type`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FulfillmentKind {
    /// Invoke the tenant's Lambda function.
    Lambda,
    /// Archive the submission in the tenant's bucket.
    S3,
    /// POST it to the tenant's HTTPS webhook.
    Webhook,
    /// A type this system does not run: the config still loads, and the
    /// handler channel is not planned for it.
    Unknown(String),
}

impl<'de> Deserialize<'de> for FulfillmentKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ok(match text.trim().to_ascii_lowercase().as_str() {
            "lambda" => Self::Lambda,
            "s3" => Self::S3,
            "webhook" => Self::Webhook,
            _ => Self::Unknown(text),
        })
    }
}

/// One address or a list of them (`"a@x.org"` or `["a@x.org", "b@x.org"]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recipients(pub Vec<String>);

impl<'de> Deserialize<'de> for Recipients {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            One(String),
            Many(Vec<String>),
            Nothing(()),
        }
        Ok(Self(match Raw::deserialize(deserializer)? {
            Raw::One(one) if one.trim().is_empty() => Vec::new(),
            Raw::One(one) => vec![one],
            Raw::Many(many) => many,
            Raw::Nothing(()) => Vec::new(),
        }))
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Notifications {
    pub internal: Option<InternalNotification>,
    pub applicant_confirmation: Option<ApplicantConfirmation>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct InternalNotification {
    pub enabled: bool,
    #[serde(deserialize_with = "null_as_default")]
    pub recipients: Vec<String>,
    #[serde(deserialize_with = "null_as_default")]
    pub sms_recipients: Vec<String>,
    pub subject: Option<String>,
    pub body_template: Option<String>,
    pub sms_template: Option<String>,
    pub sms_when: SmsWhen,
}

impl Default for InternalNotification {
    fn default() -> Self {
        Self {
            enabled: true,
            recipients: Vec::new(),
            sms_recipients: Vec::new(),
            subject: None,
            body_template: None,
            sms_template: None,
            sms_when: SmsWhen::Always,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmsWhen {
    #[default]
    Always,
    HighPriority,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ApplicantConfirmation {
    pub enabled: bool,
    pub subject: Option<String>,
    pub body_template: Option<String>,
}

/// A CTA definition, kept whole: a branch CTA button is the definition's own
/// fields plus `id`, and real configs spell `label`/`text` and `action`/`type`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct CtaDefinition(pub Map<String, Value>);

impl CtaDefinition {
    fn str(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(Value::as_str)
    }

    pub fn label(&self) -> Option<&str> {
        self.str("text").or_else(|| self.str("label"))
    }

    pub fn action(&self) -> Option<&str> {
        self.str("action").or_else(|| self.str("type"))
    }

    pub fn form_id(&self) -> Option<&str> {
        self.str("formId").or_else(|| self.str("form_id"))
    }

    pub fn program(&self) -> Option<&str> {
        self.str("program")
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ConversationBranch {
    #[serde(deserialize_with = "null_as_default")]
    pub detection_keywords: Vec<String>,
    #[serde(deserialize_with = "null_as_default")]
    pub available_ctas: AvailableCtas,
    /// The showcase item whose card follows this branch's buttons.
    #[serde(deserialize_with = "blank_as_none")]
    pub showcase_item_id: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct AvailableCtas {
    pub primary: Option<String>,
    #[serde(deserialize_with = "null_as_default")]
    pub secondary: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct CtaSettings {
    pub max_ctas_per_response: usize,
    #[serde(deserialize_with = "null_as_default")]
    pub branch_priority: Vec<String>,
    /// The branch whose CTAs follow an answer when nothing else chose any.
    pub fallback_branch: Option<String>,
}

impl Default for CtaSettings {
    fn default() -> Self {
        Self { max_ctas_per_response: 3, branch_priority: Vec::new(), fallback_branch: None }
    }
}

/// Real configs write `null` where they mean "none"; read it as the default.
/// `null`, a missing key and a blank string all mean "not set".
fn blank_as_none<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    match Option::<String>::deserialize(deserializer)? {
        Some(text) if !text.trim().is_empty() => T::deserialize(text.into_deserializer()).map(Some),
        _ => Ok(None),
    }
}

/// A map of definitions in which today's config builder also writes notes
/// (`"_note": "..."`): entries that are not objects are not definitions and
/// are skipped.
fn objects_only<'de, D>(deserializer: D) -> Result<IndexMap<String, CtaDefinition>, D::Error>
where
    D: Deserializer<'de>,
{
    let entries: Option<IndexMap<String, Value>> = Option::deserialize(deserializer)?;
    Ok(entries
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(id, value)| match value {
            Value::Object(fields) => Some((id, CtaDefinition(fields))),
            _ => None,
        })
        .collect())
}

fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(value: Value) -> TenantConfig {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn retention_is_a_year_unless_the_tenant_sets_days_and_a_bad_value_is_named_not_fatal() {
        let days = |v: Value| parse(json!({"data_retention_days": v})).retention_days();
        assert_eq!(parse(json!({})).retention_days(), Ok(365));
        assert_eq!(days(json!(null)), Ok(365));
        assert_eq!(days(json!(30)), Ok(30));
        assert_eq!(days(json!("90")), Ok(90));
        assert_eq!(days(json!(3650)), Ok(3650));
        for bad in [json!(0), json!(-5), json!(3651), json!(1.5), json!("forever"), json!([30])] {
            let err = days(bad.clone()).unwrap_err();
            assert!(err.contains("data_retention_days"), "{bad}: {err}");
        }
    }

    #[test]
    fn an_empty_config_has_the_documented_defaults() {
        let config = parse(json!({}));
        assert_eq!(config.streaming.max_tokens, 1000);
        assert_eq!(config.streaming.temperature, 0.0);
        assert!(config.sends_confirmation_email());
        assert_eq!(config.cta_settings.max_ctas_per_response, 3);
        assert_eq!(config.model_id(), None);
    }

    #[test]
    fn fulfillment_types_load_in_any_case_and_an_unknown_one_is_kept_by_name() {
        let kind = |t: Value| {
            let form = json!({"f": {"fulfillment": {"type": t}}});
            parse(json!({"conversational_forms": form})).conversational_forms["f"]
                .fulfillment
                .clone()
                .unwrap()
                .kind
        };
        assert_eq!(kind(json!("Lambda")), Some(FulfillmentKind::Lambda));
        assert_eq!(kind(json!("s3")), Some(FulfillmentKind::S3));
        assert_eq!(kind(json!("webhook")), Some(FulfillmentKind::Webhook));
        assert_eq!(kind(json!("zapier")), Some(FulfillmentKind::Unknown("zapier".into())));
        assert_eq!(kind(json!(" ")), None);
        assert_eq!(kind(Value::Null), None);
    }

    #[test]
    fn a_blank_priority_is_unset_and_a_mistyped_one_fails_naming_its_key() {
        let form = parse(json!({"conversational_forms": {"f": {"default_priority": "", "priority_rules": [
            {"field": "a", "priority": "HIGH"}]}}}))
        .conversational_forms["f"]
            .clone();
        assert_eq!(form.default_priority, None);
        assert_eq!(form.priority_rules[0].priority, Some(Priority::High));

        let config = json!({"conversational_forms": {"f": {"default_priority": "urgentish"}}});
        let err = serde_path_to_error::deserialize::<_, TenantConfig>(config).unwrap_err();
        assert_eq!(err.path().to_string(), "conversational_forms.f.default_priority");
        assert!(err.to_string().contains("urgentish"), "{err}");
    }

    #[test]
    fn a_config_without_rate_limits_gets_the_documented_defaults() {
        let limits = parse(json!({})).rate_limits;
        assert_eq!(
            (limits.chats_per_ip_per_minute, limits.submits_per_ip_per_minute),
            (20, 5),
            "per visitor"
        );
        assert_eq!((limits.chats_per_minute, limits.submits_per_minute), (600, 120), "per tenant");
        assert_eq!(limits.confirmations_per_recipient_per_day, 3);
        assert_eq!(limits.emails_per_month, 5_000);
        assert_eq!(limits.tokens_per_day, 2_000_000);
        assert!(limits.allow_no_origin);
        assert_eq!(parse(json!({"rate_limits": null})).rate_limits, RateLimits::default());
    }

    #[test]
    fn rate_limits_set_some_keys_and_keep_the_defaults_of_the_others() {
        let limits =
            parse(json!({"rate_limits": {"submits_per_minute": 0, "allow_no_origin": false}})).rate_limits;
        assert_eq!(limits.submits_per_minute, 0);
        assert!(!limits.allow_no_origin);
        assert_eq!(limits.chats_per_minute, 600);
        let err =
            serde_json::from_value::<TenantConfig>(json!({"rate_limits": {"chats_per_minute": "lots"}}));
        assert!(err.is_err(), "a limit must be a number");
    }

    #[test]
    fn model_id_falls_back_to_the_aws_section() {
        assert_eq!(parse(json!({"aws": {"model_id": "m"}})).model_id(), Some("m"));
        assert_eq!(parse(json!({"model_id": "top", "aws": {"model_id": "m"}})).model_id(), Some("top"));
    }

    #[test]
    fn fields_named_by_id_or_name_with_shorthand_validation_and_mixed_options_load() {
        let config = parse(json!({"conversational_forms": {"f": {"fields": [
            {"name": "first_name", "validation": "name"},
            {"id": "amount", "type": "currency", "validation": {"pattern": "^\\d+$", "message": "digits"}},
            {"id": "size", "type": "select", "options": ["S", {"value": 2, "label": "Two"}]},
            {"id": "phone", "type": "tel"}
        ]}}}));
        let fields = &config.conversational_forms["f"].fields;
        assert_eq!(fields[0].key(), Some("first_name"));
        assert_eq!(fields[0].validation, Some(Validation::Shorthand("name".into())));
        assert_eq!(fields[1].field_type, FieldType::Other("currency".into()));
        assert_eq!(fields[2].options[1], FieldOption { value: "2".into(), label: Some("Two".into()) });
        assert_eq!(fields[3].field_type, FieldType::Phone);
        assert!(fields[0].required, "fields are required unless they say otherwise");
    }

    #[test]
    fn a_form_is_found_by_its_key_or_its_form_id() {
        let config = parse(json!({"conversational_forms": {"volunteer": {"form_id": "vol_app"}}}));
        assert!(config.form("volunteer").is_some());
        assert!(config.form("vol_app").is_some());
        assert!(config.form("other").is_none());
    }

    #[test]
    fn recipients_may_be_one_address_or_a_list() {
        let one: Fulfillment = serde_json::from_value(json!({"email_to": "a@x.org"})).unwrap();
        let many: Fulfillment = serde_json::from_value(json!({"email_to": ["a@x.org", "b@x.org"]})).unwrap();
        assert_eq!(one.email_to.0, ["a@x.org"]);
        assert_eq!(many.email_to.0.len(), 2);
    }

    #[test]
    fn cta_label_and_action_accept_both_spellings() {
        let cta: CtaDefinition =
            serde_json::from_value(json!({"text": "Apply", "type": "start_form"})).unwrap();
        assert_eq!((cta.label(), cta.action()), (Some("Apply"), Some("start_form")));
        let cta: CtaDefinition =
            serde_json::from_value(json!({"label": "Give", "action": "external_link"})).unwrap();
        assert_eq!((cta.label(), cta.action()), (Some("Give"), Some("external_link")));
    }

    #[test]
    fn null_collections_read_as_empty() {
        let config =
            parse(json!({"conversational_forms": null, "cta_definitions": null, "allowed_origins": null}));
        assert!(config.conversational_forms.is_empty());
    }

    #[test]
    fn a_builders_note_among_the_cta_definitions_is_skipped_not_fatal() {
        let config = parse(json!({"cta_definitions": {
            "_note": "written by the config builder",
            "give": {"label": "Give", "action": "external_link", "url": "https://x.org"}
        }}));
        assert_eq!(config.cta_definitions.keys().collect::<Vec<_>>(), ["give"]);
    }

    #[test]
    fn branches_keep_their_config_order() {
        let config = parse(json!({"conversation_branches": {"zeta": {}, "alpha": {}, "mid": {}}}));
        let names: Vec<_> = config.conversation_branches.keys().collect();
        assert_eq!(names, ["zeta", "alpha", "mid"]);
    }
}
