//! The CTA enhancer: which buttons follow an answer. Everything it knows
//! about a tenant comes from its config: forms and their trigger phrases,
//! CTA definitions, conversation branches and CTA settings.

use domain::tenant::{ConversationBranch, CtaDefinition, FormConfig, Tenant, TenantConfig};
use serde_json::{Map, Value, json};

use crate::request::{Routing, SessionContext};

/// Buttons and metadata for the `cta_buttons` frame.
#[derive(Debug, Clone, PartialEq)]
pub struct CtaOutcome {
    pub buttons: Vec<Value>,
    pub metadata: Value,
    /// The chosen branch's `showcase_item_id`: its card follows the buttons.
    pub showcase: Option<String>,
}

/// Short replies that close a topic rather than open one.
const PLEASANTRIES: [&str; 16] = [
    "ok",
    "okay",
    "thanks",
    "thank you",
    "thx",
    "cool",
    "great",
    "got it",
    "bye",
    "goodbye",
    "hi",
    "hello",
    "hey",
    "no",
    "nope",
    "yes",
];
/// Words that show the visitor wants to act or learn more.
const INTENT_WORDS: [&str; 14] = [
    "how",
    "what",
    "when",
    "where",
    "can i",
    "want",
    "interested",
    "sign up",
    "apply",
    "join",
    "volunteer",
    "learn",
    "tell me",
    "help",
];

/// The buttons that follow an answer, chosen in order: the branch a click
/// named (`routing_metadata.target_branch`); a form switch or a form's
/// trigger phrase in the message; the first branch whose keywords the answer
/// holds; `cta_settings.fallback_branch`. `metadata` says which
/// (`routing_tier`, `routing_method`, `branch`).
pub fn enhance(
    tenant: &Tenant,
    user_input: &str,
    answer: &str,
    session: &SessionContext,
    routing: &Routing,
) -> Option<CtaOutcome> {
    let config = &tenant.config;
    if let Some(outcome) = clicked(config, session, routing) {
        return Some(outcome);
    }
    let message = user_input.to_lowercase();
    if let Some(outcome) = program_switch(tenant, &message, session) {
        return Some(outcome);
    }
    if let Some((key, form)) = triggered_form(config, &message, None) {
        if is_completed(session, form.program.as_deref(), Some(form.id_or(key))) {
            return None;
        }
        let button = json!({
            "type": "form_cta",
            "label": form.cta_text.as_deref().or(form.title.as_deref()).unwrap_or("Start"),
            "action": "start_form",
            "formId": form.id_or(key),
            "fields": tenant.raw_form_fields(key),
        });
        return Some(CtaOutcome {
            buttons: vec![button],
            metadata: json!({
                "source": "form_trigger",
                "routing_tier": "form_trigger",
                "routing_method": "trigger_phrase",
                "form_id": form.id_or(key),
            }),
            showcase: None,
        });
    }
    if shows_engagement(&message)
        && let Some(outcome) = branch_ctas(config, &message, &answer.to_lowercase(), session)
    {
        return Some(outcome);
    }
    fallback_ctas(config, session)
}

/// The buttons of the branch a click named (`routing_metadata.target_branch`),
/// when it names one the tenant has: a click always wins.
pub fn clicked(config: &TenantConfig, session: &SessionContext, routing: &Routing) -> Option<CtaOutcome> {
    let (click, target) = (routing.clicked?, routing.target_branch.as_deref()?);
    let (name, branch) = config.conversation_branches.get_key_value(target)?;
    let buttons = branch_buttons(config, branch, session, true);
    let metadata = json!({"routing_tier": "explicit", "routing_method": click.as_str(), "branch": name});
    Some(CtaOutcome { buttons, metadata, showcase: branch.showcase_item_id.clone() })
}

/// `cta_settings.fallback_branch`: its buttons when nothing else chose any.
fn fallback_ctas(config: &TenantConfig, session: &SessionContext) -> Option<CtaOutcome> {
    let name = config.cta_settings.fallback_branch.as_deref()?;
    let (name, branch) = config.conversation_branches.get_key_value(name)?;
    let buttons = branch_buttons(config, branch, session, true);
    (!buttons.is_empty()).then(|| CtaOutcome {
        buttons,
        metadata: json!({"routing_tier": "fallback", "routing_method": "fallback_branch", "branch": name}),
        showcase: branch.showcase_item_id.clone(),
    })
}

/// A visitor part-way through one form who asks about another program.
fn program_switch(tenant: &Tenant, message: &str, session: &SessionContext) -> Option<CtaOutcome> {
    let config = &tenant.config;
    let suspended_id = session.suspended_forms.first()?;
    let (suspended_key, suspended) = config.form_entry(suspended_id)?;
    let (key, form) = triggered_form(config, message, Some(suspended_key))?;
    Some(CtaOutcome {
        buttons: Vec::new(),
        metadata: json!({
            "program_switch_detected": true,
            "suspended_form": {
                "form_id": suspended.id_or(suspended_key),
                "program_name": program_name(suspended_key, suspended),
            },
            "new_form_of_interest": {
                "form_id": form.id_or(key),
                "program_name": program_name(key, form),
                "cta_text": form.cta_text.as_deref().or(form.title.as_deref()),
                "fields": tenant.raw_form_fields(key),
            },
        }),
        showcase: None,
    })
}

fn program_name<'a>(key: &'a str, form: &'a FormConfig) -> &'a str {
    form.title.as_deref().or(form.program.as_deref()).unwrap_or(key)
}

/// The first enabled form (other than `except`) with a trigger phrase in the message.
fn triggered_form<'a>(
    config: &'a TenantConfig,
    message: &str,
    except: Option<&str>,
) -> Option<(&'a str, &'a FormConfig)> {
    config.conversational_forms.iter().map(|(k, f)| (k.as_str(), f)).find(|(key, form)| {
        form.enabled
            && Some(*key) != except
            && form.trigger_phrases.iter().any(|phrase| contains_phrase(message, phrase))
    })
}

fn contains_phrase(haystack_lowercase: &str, phrase: &str) -> bool {
    let phrase = phrase.trim().to_lowercase();
    !phrase.is_empty() && haystack_lowercase.contains(&phrase)
}

fn shows_engagement(message: &str) -> bool {
    let trimmed = message.trim().trim_end_matches(['.', '!', ' ']);
    if PLEASANTRIES.contains(&trimmed) {
        return false;
    }
    message.contains('?')
        || message.split_whitespace().count() >= 4
        || INTENT_WORDS.iter().any(|w| message.contains(w))
}

/// The first branch whose keywords appear in the answer: its primary CTA, and
/// its secondary ones for a substantial message; completed programs removed.
fn branch_ctas(
    config: &TenantConfig,
    message: &str,
    answer: &str,
    session: &SessionContext,
) -> Option<CtaOutcome> {
    let priority = &config.cta_settings.branch_priority;
    let ordered: Vec<(&str, _)> = if priority.is_empty() {
        config.conversation_branches.iter().map(|(k, b)| (k.as_str(), b)).collect()
    } else {
        priority
            .iter()
            .filter_map(|name| config.conversation_branches.get_key_value(name))
            .map(|(k, b)| (k.as_str(), b))
            .collect()
    };
    let (name, branch) = ordered.into_iter().find(|(_, branch)| {
        branch.detection_keywords.iter().any(|keyword| contains_phrase(answer, keyword))
    })?;
    let buttons = branch_buttons(config, branch, session, message.chars().count() > 20);
    (!buttons.is_empty()).then(|| CtaOutcome {
        buttons,
        metadata: json!({
            "source": "conversation_branch",
            "routing_tier": "keyword",
            "routing_method": "detection_keywords",
            "branch": name,
        }),
        showcase: branch.showcase_item_id.clone(),
    })
}

/// A branch's primary CTA, then (with `secondary`) its secondary ones, each
/// marked with its `_position`; CTAs of completed programs dropped, at most
/// `max_ctas_per_response`.
fn branch_buttons(
    config: &TenantConfig,
    branch: &ConversationBranch,
    session: &SessionContext,
    secondary: bool,
) -> Vec<Value> {
    let ctas = &branch.available_ctas;
    let primary = ctas.primary.iter().map(|id| (id, "primary"));
    let secondary = ctas.secondary.iter().filter(|_| secondary).map(|id| (id, "secondary"));
    primary
        .chain(secondary)
        .filter_map(|(id, position)| Some((id, position, config.cta_definitions.get(id)?)))
        .filter(|(_, _, cta)| !is_completed(session, cta_program(config, cta), cta.form_id()))
        .map(|(id, position, cta)| {
            let mut button = button(id, cta);
            button["_position"] = Value::from(position);
            button
        })
        .take(config.cta_settings.max_ctas_per_response)
        .collect()
}

/// A CTA's program: its own `program`, else that of the form it starts.
fn cta_program<'a>(config: &'a TenantConfig, cta: &'a CtaDefinition) -> Option<&'a str> {
    cta.program()
        .or_else(|| cta.form_id().and_then(|id| config.form(id)).and_then(|form| form.program.as_deref()))
}

fn is_completed(session: &SessionContext, program: Option<&str>, form_id: Option<&str>) -> bool {
    session
        .completed_forms
        .iter()
        .any(|done| Some(done.as_str()) == program || Some(done.as_str()) == form_id)
}

/// The definition's own fields plus `id`, with `label` and `action` whichever
/// spelling the config used; no `style` (the widget places buttons by `_position`).
pub(crate) fn button(id: &str, cta: &CtaDefinition) -> Value {
    let mut fields: Map<String, Value> = cta.0.clone();
    fields.remove("style");
    fields.insert("id".into(), Value::from(id));
    if let Some(label) = cta.label() {
        fields.insert("label".into(), Value::from(label));
    }
    if let Some(action) = cta.action() {
        fields.insert("action".into(), Value::from(action));
    }
    Value::Object(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(config: Value) -> Tenant {
        Tenant { id: "T".into(), config: serde_json::from_value(config.clone()).unwrap(), raw: config }
    }

    fn session(completed: &[&str], suspended: &[&str]) -> SessionContext {
        SessionContext {
            completed_forms: completed.iter().map(|s| s.to_string()).collect(),
            suspended_forms: suspended.iter().map(|s| s.to_string()).collect(),
            ..SessionContext::default()
        }
    }

    fn config() -> Value {
        json!({
            "conversational_forms": {
                "tutor_app": {"form_id": "tutor_app", "title": "Tutor Application", "program": "tutoring",
                              "cta_text": "Apply to tutor", "trigger_phrases": ["become a tutor"],
                              "fields": [{"id": "email", "type": "email"}]},
                "mentor_app": {"form_id": "mentor_app", "title": "Mentor Application", "program": "mentoring",
                               "cta_text": "Apply to mentor", "trigger_phrases": ["mentor a teen"],
                               "fields": [{"id": "phone", "type": "phone"}]}
            },
            "cta_definitions": {
                "apply_tutor": {"label": "Apply to tutor", "action": "start_form", "formId": "tutor_app"},
                "apply_mentor": {"text": "Apply to mentor", "type": "start_form", "formId": "mentor_app"},
                "info": {"label": "Info session", "action": "external_link", "url": "https://x.org/info"},
                "donate": {"label": "Donate", "action": "external_link", "url": "https://x.org/give"}
            },
            "conversation_branches": {
                "mentoring": {"detection_keywords": ["mentor"], "available_ctas": {"primary": "apply_mentor", "secondary": ["info", "donate"]}},
                "tutoring": {"detection_keywords": ["tutor"], "available_ctas": {"primary": "apply_tutor", "secondary": ["info", "donate"]}}
            },
            "cta_settings": {"max_ctas_per_response": 3, "branch_priority": ["tutoring", "mentoring"]}
        })
    }

    #[test]
    fn a_trigger_phrase_in_the_message_offers_that_form_with_its_fields() {
        let outcome = enhance(
            &tenant(config()),
            "How do I become a tutor?",
            "",
            &session(&[], &[]),
            &Routing::default(),
        )
        .unwrap();
        assert_eq!(
            outcome.buttons,
            [
                json!({"type": "form_cta", "label": "Apply to tutor", "action": "start_form", "formId": "tutor_app",
                    "fields": [{"id": "email", "type": "email"}]})
            ]
        );
    }

    #[test]
    fn a_form_whose_program_is_completed_is_not_offered_again() {
        let outcome = enhance(
            &tenant(config()),
            "I want to become a tutor",
            "",
            &session(&["tutoring"], &[]),
            &Routing::default(),
        );
        assert_eq!(outcome, None);
    }

    #[test]
    fn a_branch_gives_its_primary_cta_for_a_short_message() {
        let outcome = enhance(
            &tenant(config()),
            "how to tutor?",
            "Our tutors read weekly.",
            &session(&[], &[]),
            &Routing::default(),
        )
        .unwrap();
        let ids: Vec<&str> = outcome.buttons.iter().map(|b| b["id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["apply_tutor"]);
        assert_eq!(
            outcome.metadata,
            json!({"source": "conversation_branch", "routing_tier": "keyword",
                   "routing_method": "detection_keywords", "branch": "tutoring"})
        );
    }

    #[test]
    fn a_branch_adds_secondary_ctas_for_a_longer_message_following_branch_priority() {
        let answer = "Mentors and tutors both help.";
        let outcome = enhance(
            &tenant(config()),
            "What does volunteering involve here?",
            answer,
            &session(&[], &[]),
            &Routing::default(),
        )
        .unwrap();
        let ids: Vec<&str> = outcome.buttons.iter().map(|b| b["id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["apply_tutor", "info", "donate"], "tutoring has priority over mentoring");
    }

    #[test]
    fn branch_buttons_carry_the_definition_with_id_label_and_action_in_either_spelling() {
        let outcome = enhance(
            &tenant(config()),
            "what about mentoring?",
            "A mentor meets monthly.",
            &session(&[], &[]),
            &Routing::default(),
        )
        .unwrap();
        assert_eq!(
            outcome.buttons[0],
            json!({"text": "Apply to mentor", "type": "start_form", "formId": "mentor_app", "id": "apply_mentor",
                   "label": "Apply to mentor", "action": "start_form", "_position": "primary"})
        );
    }

    #[test]
    fn completed_programs_are_removed_from_branch_ctas_and_the_cap_applies() {
        let mut config = config();
        config["cta_settings"]["max_ctas_per_response"] = json!(1);
        let outcome = enhance(
            &tenant(config),
            "Tell me more about tutoring please",
            "Tutors help kids.",
            &session(&["tutor_app"], &[]),
            &Routing::default(),
        )
        .unwrap();
        let ids: Vec<&str> = outcome.buttons.iter().map(|b| b["id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["info"]);
    }

    fn clicked(target: &str) -> Routing {
        Routing {
            clicked: Some(crate::request::Click::Cta),
            target_branch: Some(target.into()),
            showcase: None,
        }
    }

    #[test]
    fn a_click_routes_to_its_target_branch_with_positions_and_without_completed_forms() {
        let mut config = config();
        config["cta_definitions"]["info"]["style"] = json!("secondary");
        let outcome = enhance(
            &tenant(config),
            "ok",
            "Nothing about tutors here.",
            &session(&["mentoring"], &[]),
            &clicked("mentoring"),
        )
        .unwrap();
        let ids: Vec<(&str, &str)> = outcome
            .buttons
            .iter()
            .map(|b| (b["id"].as_str().unwrap(), b["_position"].as_str().unwrap()))
            .collect();
        assert_eq!(ids, [("info", "secondary"), ("donate", "secondary")], "the mentoring form is completed");
        assert!(outcome.buttons.iter().all(|b| b.get("style").is_none()));
        assert_eq!(
            outcome.metadata,
            json!({"routing_tier": "explicit", "routing_method": "cta", "branch": "mentoring"})
        );
    }

    #[test]
    fn an_unknown_target_branch_falls_through_and_the_fallback_branch_answers_last() {
        let mut config = config();
        config["cta_settings"]["fallback_branch"] = json!("tutoring");
        let outcome = enhance(&tenant(config), "ok", "Hello.", &session(&[], &[]), &clicked("nope")).unwrap();
        let ids: Vec<&str> = outcome.buttons.iter().map(|b| b["id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["apply_tutor", "info", "donate"]);
        assert_eq!(outcome.metadata["routing_tier"], "fallback");
        assert_eq!(outcome.metadata["branch"], "tutoring");
    }

    #[test]
    fn pleasantries_do_not_get_buttons() {
        assert_eq!(
            enhance(
                &tenant(config()),
                "thanks!",
                "Tutors are great.",
                &session(&[], &[]),
                &Routing::default()
            ),
            None
        );
    }

    #[test]
    fn another_forms_trigger_during_a_suspended_form_is_a_program_switch() {
        let outcome = enhance(
            &tenant(config()),
            "actually I'd rather mentor a teen",
            "",
            &session(&[], &["tutor_app"]),
            &Routing::default(),
        )
        .unwrap();
        assert!(outcome.buttons.is_empty());
        assert_eq!(
            outcome.metadata,
            json!({
                "program_switch_detected": true,
                "suspended_form": {"form_id": "tutor_app", "program_name": "Tutor Application"},
                "new_form_of_interest": {"form_id": "mentor_app", "program_name": "Mentor Application",
                                         "cta_text": "Apply to mentor", "fields": [{"id": "phone", "type": "phone"}]}
            })
        );
    }

    #[test]
    fn the_suspended_forms_own_trigger_is_not_a_switch() {
        let outcome = enhance(
            &tenant(config()),
            "I want to become a tutor",
            "",
            &session(&[], &["tutor_app"]),
            &Routing::default(),
        )
        .unwrap();
        assert_eq!(outcome.buttons[0]["formId"], "tutor_app");
        assert!(outcome.metadata.get("program_switch_detected").is_none());
    }
}
