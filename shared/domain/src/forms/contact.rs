//! The applicant's contact, found in any form: first from the form's field
//! types and its composites' subfield roles (`field_7.first_name`), then from
//! well-known ids and labels (`email`, `email_address`, "Phone number", ...).
//! Stored on the submission as `contact`; confirmations go to it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::validate::is_email;
use crate::tenant::{FieldType, FormConfig};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// What a value says about the applicant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    First,
    Middle,
    Last,
    FullName,
    Email,
    Phone,
    Address,
}

/// A role from an id's last segment or a label, spelled as configs spell them.
fn role_of_name(name: &str) -> Option<Role> {
    let name: String = name
        .trim()
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    Some(match name.trim_matches('_') {
        "first_name" | "firstname" | "first" | "given_name" => Role::First,
        "middle_name" | "middlename" | "middle" => Role::Middle,
        "last_name" | "lastname" | "last" | "surname" | "family_name" => Role::Last,
        "name" | "full_name" | "fullname" | "your_name" => Role::FullName,
        "email" | "e_mail" | "email_address" | "contact_email" | "your_email" => Role::Email,
        "phone" | "phone_number" | "mobile" | "mobile_number" | "cell" | "telephone" | "tel" => Role::Phone,
        "address" | "mailing_address" | "home_address" | "street_address" => Role::Address,
        _ => return None,
    })
}

/// The part of an address a subfield holds, in the order an address is written.
fn address_part(sub_key: &str) -> Option<usize> {
    let role = sub_key.rsplit('.').next().unwrap_or(sub_key).to_ascii_lowercase();
    const ORDER: [&[&str]; 6] = [
        &["street", "street_address", "address_line_1", "line1", "address1"],
        &["apt_unit", "apt", "unit", "suite", "address_line_2", "line2", "address2"],
        &["city", "town"],
        &["state", "region", "province"],
        &["zip_code", "zip", "postal_code", "postcode"],
        &["country"],
    ];
    ORDER.iter().position(|names| names.contains(&role.as_str()))
}

/// The applicant's contact from a validated submission (flat keys, text values).
pub fn extract<'a>(form: &FormConfig, value_of: impl Fn(&str) -> Option<&'a str>) -> Contact {
    let value = |key: &str| value_of(key).map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned);
    let mut by_name: Vec<(Role, String)> = Vec::new();
    let mut by_type = Contact::default();
    let mut middle = None;
    let mut address_parts: Vec<(usize, String)> = Vec::new();

    // Field types and subfield roles first: what the form says a value is.
    for field in &form.fields {
        for sub in &field.subfields {
            let Some(key) = sub.key() else { continue };
            let Some(text) = value(key) else { continue };
            let role = key.rsplit('.').next().and_then(role_of_name);
            match (&sub.field_type, &field.field_type, role) {
                (FieldType::Email, ..) | (_, _, Some(Role::Email)) => set(&mut by_type.email, text),
                (FieldType::Phone, ..) | (_, _, Some(Role::Phone)) => set(&mut by_type.phone, text),
                (_, FieldType::Address, _) => {
                    address_parts.push((address_part(key).unwrap_or(usize::MAX), text));
                }
                (_, _, Some(Role::First)) => set(&mut by_type.first_name, text),
                (_, _, Some(Role::Last)) => set(&mut by_type.last_name, text),
                (_, _, Some(Role::Middle)) => set(&mut middle, text),
                _ => {}
            }
        }
        if !field.subfields.is_empty() {
            continue;
        }
        let Some(key) = field.key() else { continue };
        let Some(text) = value(key) else { continue };
        match field.field_type {
            FieldType::Email => set(&mut by_type.email, text),
            FieldType::Phone => set(&mut by_type.phone, text),
            _ => {
                // Well-known ids, then labels: the second pass, kept in form order.
                let role = role_of_name(key.rsplit('.').next().unwrap_or(key))
                    .or_else(|| field.label.as_deref().and_then(role_of_name));
                if let Some(role) = role {
                    by_name.push((role, text));
                }
            }
        }
    }
    address_parts.sort_by_key(|(order, _)| *order);
    if !address_parts.is_empty() {
        by_type.address =
            Some(address_parts.into_iter().map(|(_, part)| part).collect::<Vec<_>>().join(", "));
    }

    let mut contact = by_type;
    for (role, text) in by_name {
        let slot = match role {
            Role::First => &mut contact.first_name,
            Role::Middle => &mut middle,
            Role::Last => &mut contact.last_name,
            Role::FullName => &mut contact.full_name,
            Role::Email => &mut contact.email,
            Role::Phone => &mut contact.phone,
            Role::Address => &mut contact.address,
        };
        set(slot, text);
    }
    contact.email = contact.email.filter(|email| is_email(email));
    if contact.full_name.is_none() {
        let parts: Vec<&str> = [&contact.first_name, &middle, &contact.last_name]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect();
        if !parts.is_empty() {
            contact.full_name = Some(parts.join(" "));
        }
    } else if contact.first_name.is_none() {
        // One "Name" field: its first word is what a greeting uses.
        contact.first_name =
            contact.full_name.as_deref().and_then(|name| name.split_whitespace().next()).map(str::to_owned);
    }
    contact
}

/// The first value found for a role wins.
fn set(slot: &mut Option<String>, text: String) {
    if slot.is_none() {
        *slot = Some(text);
    }
}

impl Contact {
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }

    /// The contact as the stored record's attribute: role → value, only those found.
    pub fn to_map(&self) -> BTreeMap<String, String> {
        [
            ("first_name", &self.first_name),
            ("last_name", &self.last_name),
            ("full_name", &self.full_name),
            ("email", &self.email),
            ("phone", &self.phone),
            ("address", &self.address),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.clone().map(|v| (name.to_owned(), v)))
        .collect()
    }

    /// The contact from the stored record's attribute.
    pub fn from_map(map: &BTreeMap<String, String>) -> Self {
        let get = |name: &str| map.get(name).cloned();
        Self {
            first_name: get("first_name"),
            last_name: get("last_name"),
            full_name: get("full_name"),
            email: get("email"),
            phone: get("phone"),
            address: get("address"),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn contact_of(form: Value, data: Value) -> Contact {
        let form: FormConfig = serde_json::from_value(json!({ "fields": form })).unwrap();
        let data = data.as_object().unwrap().clone();
        extract(&form, |key| data.get(key).and_then(Value::as_str))
    }

    #[test]
    fn the_contact_of_a_canonical_form_comes_from_its_field_types_and_subfield_roles() {
        let contact = contact_of(
            json!([
                {"id": "field_1", "type": "name", "subfields": [
                    {"id": "field_1.first_name"}, {"id": "field_1.middle_name"}, {"id": "field_1.last_name"}]},
                {"id": "field_2", "type": "email", "label": "Where can we reach you?"},
                {"id": "field_3", "type": "phone"},
                {"id": "field_7", "type": "address", "subfields": [
                    {"id": "field_7.zip_code"}, {"id": "field_7.street"}, {"id": "field_7.city"},
                    {"id": "field_7.state"}]}
            ]),
            json!({
                "field_1.first_name": "Ann", "field_1.middle_name": "B", "field_1.last_name": "Lee",
                "field_2": "ann@example.org", "field_3": "503 555 0142",
                "field_7.street": "1 Main St", "field_7.city": "Austin", "field_7.state": "TX",
                "field_7.zip_code": "78701"
            }),
        );
        assert_eq!(
            contact,
            Contact {
                first_name: Some("Ann".into()),
                last_name: Some("Lee".into()),
                full_name: Some("Ann B Lee".into()),
                email: Some("ann@example.org".into()),
                phone: Some("503 555 0142".into()),
                address: Some("1 Main St, Austin, TX, 78701".into()),
            }
        );
    }

    #[test]
    fn a_phone_with_consent_composite_gives_the_phone() {
        let contact = contact_of(
            json!([{"id": "sms_opt_in", "type": "phone_with_consent", "subfields": [
                {"id": "sms_opt_in.phone", "type": "phone"}, {"id": "sms_opt_in.consent", "type": "select"}]}]),
            json!({"sms_opt_in.phone": "+15035550142", "sms_opt_in.consent": "yes"}),
        );
        assert_eq!(contact.phone.as_deref(), Some("+15035550142"));
        assert_eq!(contact.address, None);
    }

    #[test]
    fn well_known_ids_and_labels_are_read_when_no_type_says_it() {
        let contact = contact_of(
            json!([
                {"name": "first_name"}, {"name": "last_name"},
                {"id": "q1", "label": "Email address"}, {"id": "mobile"}
            ]),
            json!({"first_name": "Ana", "last_name": "Lopez", "q1": "ana@example.org", "mobile": "503-555-0100"}),
        );
        assert_eq!(contact.first_name.as_deref(), Some("Ana"));
        assert_eq!(contact.full_name.as_deref(), Some("Ana Lopez"));
        assert_eq!(contact.email.as_deref(), Some("ana@example.org"));
        assert_eq!(contact.phone.as_deref(), Some("503-555-0100"));
    }

    #[test]
    fn a_single_name_field_gives_the_first_name_and_an_invalid_email_is_no_email() {
        let contact = contact_of(
            json!([{"id": "name"}, {"id": "email"}]),
            json!({"name": "Ana Lopez", "email": "nope"}),
        );
        assert_eq!(contact.full_name.as_deref(), Some("Ana Lopez"));
        assert_eq!(contact.first_name.as_deref(), Some("Ana"));
        assert_eq!(contact.email, None);
        assert_eq!(Contact::from_map(&contact.to_map()), contact);
    }
}
