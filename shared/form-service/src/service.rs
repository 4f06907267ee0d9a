//! Form requests: `validate_field` answers as the visitor types;
//! `submit_form` validates, stores the submission and publishes FormSubmitted.

use std::{collections::BTreeMap, future::Future, pin::Pin, sync::Arc};

use domain::{
    edge::{self, Caller, JsonResponse, RequestError},
    events::{EventPublisher, FormSubmitted, channel},
    forms::{self, Contact, FieldErrors, MAX_FORM_BYTES},
    limits::{self, Guard, Refusal, SubjectKey},
    parking::{Parked, Parking},
    report::error_chain,
    sse::{self, FormFrame, Frame},
    submissions::{Created, NewSubmission, StaffView, StoreError, SubmissionStore},
    tenant::{ConfigSource, DEFAULT_RETENTION_DAYS, FormConfig, FulfillmentKind, Tenant, TenantLoader},
    time::{now_epoch_millis, now_rfc3339},
};
use serde_json::{Map, Value};

use crate::request::{FormRequest, SessionIds};

/// The whole answer to a form request: a status and its frames, which both
/// the form URL and the chat URL (`form_mode`) send byte for byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormResponse {
    pub status: u16,
    pub frames: Vec<String>,
    /// Beyond the SSE headers: `Access-Control-Allow-Origin` for an allowed
    /// origin, `Retry-After` on a 429.
    pub headers: Vec<(&'static str, String)>,
}

impl FormResponse {
    /// `:ok`, `start`, the result frame, `[DONE]`.
    fn result(frame: &FormFrame) -> Self {
        Self {
            status: 200,
            frames: vec![
                sse::PRELUDE.to_owned(),
                Frame::Start.encode(),
                frame.encode(),
                sse::DONE.to_owned(),
            ],
            headers: Vec::new(),
        }
    }

    fn refused(status: u16, code: &str, message: &str) -> Self {
        Self {
            status,
            frames: vec![Frame::Error { error: message, code }.encode(), sse::DONE.to_owned()],
            headers: Vec::new(),
        }
    }

    fn request_refused(err: &RequestError) -> Self {
        Self::refused(err.status, err.code, &err.message)
    }

    /// 429 `rate_limited` with `Retry-After`.
    fn rate_limited(refusal: &Refusal) -> Self {
        let mut response =
            Self::refused(429, "rate_limited", "Too many requests. Please wait a moment and try again.");
        response.headers.push(("retry-after", refusal.retry_after.to_string()));
        response
    }

    /// Lets the browser read the answer from this origin (`None`: no CORS header).
    pub fn allowing(mut self, origin: Option<String>) -> Self {
        edge::allow_origin(&mut self.headers, origin);
        self
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        edge::find_header(&self.headers, name)
    }

    pub fn body(&self) -> String {
        self.frames.concat()
    }
}

/// A form handler behind a trait object, so the chat URL can hold one.
pub trait FormEndpoint: Send + Sync {
    fn respond<'a>(
        &'a self,
        body: &'a [u8],
        caller: &'a Caller,
    ) -> Pin<Box<dyn Future<Output = FormResponse> + Send + 'a>>;
}

pub struct FormService<C, S, P> {
    tenants: Arc<TenantLoader<C>>,
    store: S,
    publisher: P,
    /// The abuse limits (`rate_limits.*`); without one, nothing is counted.
    guard: Option<Guard>,
    /// The widget's own origins (`WIDGET_ORIGINS`), answered whatever `allowed_origins` says.
    widget_origins: Vec<String>,
    /// Where a valid submission goes when the table cannot take it in time.
    parking: Option<Arc<dyn Parking>>,
    /// The key of visitors' hashes in counter keys (`VISITOR_KEY_SECRET`).
    visitor_key: SubjectKey,
}

/// How long a submit waits for the table before it parks the submission: one
/// SDK operation (its retries included), so that parking (one more) still ends
/// well inside form-intake's 15 s.
pub const STORE_DEADLINE: std::time::Duration = aws_adapters::config::OPERATION_TIMEOUT;

impl<C: ConfigSource, S: SubmissionStore, P: EventPublisher> FormEndpoint for FormService<C, S, P> {
    fn respond<'a>(
        &'a self,
        body: &'a [u8],
        caller: &'a Caller,
    ) -> Pin<Box<dyn Future<Output = FormResponse> + Send + 'a>> {
        Box::pin(self.handle_from(body, caller))
    }
}

impl<C: ConfigSource, S: SubmissionStore, P: EventPublisher> FormService<C, S, P> {
    pub fn new(tenants: Arc<TenantLoader<C>>, store: S, publisher: P) -> Self {
        Self {
            tenants,
            store,
            publisher,
            guard: None,
            widget_origins: lambda_edge::settings::default_widget_origins(),
            parking: None,
            visitor_key: SubjectKey::of_this_process(),
        }
    }

    /// The key of visitors' hashes, in place of this process's own.
    pub fn with_visitor_key(mut self, key: SubjectKey) -> Self {
        self.visitor_key = key;
        self
    }

    /// Parks submissions the table cannot take in time (`PARKED_SUBMISSIONS_QUEUE_URL`).
    pub fn with_parking(mut self, parking: Arc<dyn Parking>) -> Self {
        self.parking = Some(parking);
        self
    }

    /// The widget's own origins, in place of the default ones.
    pub fn with_widget_origins(mut self, origins: Vec<String>) -> Self {
        self.widget_origins = origins;
        self
    }

    /// Counts submits and validations against the tenant's `rate_limits`.
    pub fn with_guard(mut self, guard: Guard) -> Self {
        self.guard = Some(guard);
        self
    }

    /// `GET ?action=get_config&t=<tenant_hash>`: the tenant's public widget config.
    pub async fn get_config(
        &self,
        query: Option<&str>,
        if_none_match: Option<&str>,
        caller: &Caller,
    ) -> JsonResponse {
        super::config::get_config(&self.tenants, query, if_none_match, caller, &self.widget_origins).await
    }

    /// A request with no caller details (no `Origin`, no source IP), as a
    /// server-to-server caller or an in-process benchmark sends it.
    pub async fn handle(&self, body: &[u8]) -> FormResponse {
        self.handle_from(body, &Caller::default()).await
    }

    /// Origin, then the request and its tenant, then the limits, then the work.
    pub async fn handle_from(&self, body: &[u8], caller: &Caller) -> FormResponse {
        let request = match FormRequest::parse(body) {
            Ok(request) => request,
            Err(err) => return FormResponse::request_refused(&err).allowing(caller.origin.clone()),
        };
        let hash = match &request {
            FormRequest::ValidateField { tenant_hash, .. } | FormRequest::SubmitForm { tenant_hash, .. } => {
                tenant_hash
            }
        };
        let tenant = match self.tenants.load(hash.as_str()).await {
            Ok(tenant) => tenant,
            Err(err) => {
                if err.status() >= 500 {
                    tracing::error!(code = err.code(), error = %error_chain(&err), "tenant unavailable");
                }
                return FormResponse::refused(err.status(), err.code(), err.public_message())
                    .allowing(caller.origin.clone());
            }
        };
        let allowed_origin = match edge::check_origin(&tenant.config, caller, &self.widget_origins) {
            Ok(origin) => origin,
            Err(err) => {
                tracing::warn!(
                    tenant_id = tenant.id,
                    origin = caller.origin,
                    "form request from an origin the tenant does not allow"
                );
                // Readable by the browser: the refusal says nothing a stranger may not know.
                return FormResponse::request_refused(&err).allowing(caller.origin.clone());
            }
        };
        self.answer(&tenant, request, caller).await.allowing(allowed_origin)
    }

    async fn answer(&self, tenant: &Tenant, request: FormRequest, caller: &Caller) -> FormResponse {
        let ip = caller.source_ip.as_deref();
        match request {
            FormRequest::ValidateField { form_id, field_id, value, .. } => {
                let limits =
                    limits::validation_limits(&self.visitor_key, &tenant.id, ip, &tenant.config.rate_limits);
                if let Err(refusal) = self.admit(&limits).await {
                    return FormResponse::rate_limited(&refusal);
                }
                let form = form_id.as_deref().and_then(|id| tenant.config.form(id));
                FormResponse::result(&match forms::validate_field(form, &field_id, &value) {
                    Ok(()) => FormFrame::valid(&field_id),
                    Err(errors) => FormFrame::invalid(&field_id, errors),
                })
            }
            FormRequest::SubmitForm { form_id, form_data, client_submission_id, session, .. } => {
                self.submit(tenant, &form_id, form_data, client_submission_id, session, ip).await
            }
        }
    }

    async fn admit(&self, limits: &[limits::Limit]) -> Result<(), Refusal> {
        match &self.guard {
            Some(guard) => guard.admit(limits).await,
            None => Ok(()),
        }
    }

    async fn submit(
        &self,
        tenant: &Tenant,
        form_id: &str,
        data: Map<String, Value>,
        client_submission_id: Option<String>,
        session: SessionIds,
        source_ip: Option<&str>,
    ) -> FormResponse {
        let Some((key, form)) = tenant.config.form_entry(form_id) else {
            return form_error("This form is not available.", Vec::new());
        };
        if !form.enabled {
            return form_error("This form is not accepting submissions right now.", Vec::new());
        }
        if serde_json::to_vec(&data).map_or(usize::MAX, |bytes| bytes.len()) > MAX_FORM_BYTES {
            return FormResponse::refused(413, "form_too_large", "The form is larger than 32 KiB");
        }
        let form_id = form.id_or(key).to_owned();
        let data = forms::flatten_composites(form, data);
        let priority = forms::priority(form, &data);
        let submission_id = format!("{form_id}_{}_{}", now_epoch_millis(), short_random());
        let complete = |submission_id: &str, channels: &[String]| {
            let title = form.title.as_deref().unwrap_or("submission");
            FormFrame::complete(
                format!("Thank you! Your {title} was received."),
                submission_id,
                priority,
                channels,
            )
        };
        // A bot filled the field no person sees: look successful, keep nothing.
        // Only a bot fills a field it cannot see with text; `false`, `0` or `[]` is a widget's default.
        if data.get("_hp").and_then(Value::as_str).is_some_and(|hp| !hp.trim().is_empty()) {
            tracing::info!(tenant_id = tenant.id, form_id, "honeypot submission discarded");
            return FormResponse::result(&complete(
                &submission_id,
                &planned_channels(tenant, form, &Contact::default()),
            ));
        }
        let validated = match forms::validate_submission(form, &data) {
            Ok(validated) => validated,
            Err(errors) => {
                // Field ids only, never values: enough to see that a form's config and the widget disagree.
                let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
                tracing::warn!(tenant_id = tenant.id, form_id, fields = ?fields, "submission refused as invalid");
                return form_error("Please correct the highlighted fields.", errors);
            }
        };
        let contact = forms::extract_contact(form, |key| validated.data.get(key).and_then(Value::as_str));
        // Counted once the submit is valid. The widget shows success whatever
        // we answer, so a valid submit over a limit is kept, held: stored,
        // never published, nobody notified.
        let submit_limits =
            limits::submit_limits(&self.visitor_key, &tenant.id, source_ip, &tenant.config.rate_limits);
        let held = match self.admit(&submit_limits).await {
            Ok(()) => None,
            Err(refusal) => {
                tracing::warn!(
                    tenant_id = tenant.id,
                    form_id,
                    limit = refusal.limit,
                    "submission over a limit: stored, held without fulfillment"
                );
                Some(refusal.limit.to_owned())
            }
        };
        let channels = if held.is_some() { Vec::new() } else { planned_channels(tenant, form, &contact) };

        let event = FormSubmitted {
            schema_version: domain::events::SCHEMA_VERSION,
            submission_id: submission_id.clone(),
            tenant_id: tenant.id.clone(),
            form_id: form_id.clone(),
            priority,
            submitted_at: now_rfc3339(),
            channels: channels.clone(),
        };
        let mut response = complete(&submission_id, &channels);
        if let FormFrame::FormComplete { held: is_held, .. } = &mut response {
            *is_held = held.is_some();
        }
        let staff = staff_view(tenant, form, &form_id, &validated.data, session);
        let submission =
            NewSubmission { event, form_data: validated.data, contact, client_submission_id, held, staff };
        let response_text = serde_json::to_string(&response).unwrap_or_default();
        let created = match tokio::time::timeout(
            STORE_DEADLINE,
            self.store.create(&submission, &response_text),
        )
        .await
        {
            Ok(created) => created,
            Err(_) => Err(StoreError {
                operation: "create",
                source: format!("no answer within {} s", STORE_DEADLINE.as_secs()).into(),
            }),
        };
        match created {
            Ok(Created::New) => {}
            Ok(Created::KeyReused) => {
                tracing::warn!(
                    tenant_id = tenant.id,
                    form_id,
                    "client_submission_id reused for another submission"
                );
                return FormResponse::refused(
                    409,
                    "idempotency_key_reused",
                    "This submission id was already used for a different submission.",
                );
            }
            Ok(Created::Duplicate(first)) => {
                // The first answer as stored; one we cannot read back is answered as this one.
                let mut first: FormFrame = serde_json::from_str(&first).unwrap_or(response);
                if let FormFrame::FormComplete { duplicate, .. } = &mut first {
                    *duplicate = true;
                }
                return FormResponse::result(&first);
            }
            Err(err) => {
                tracing::error!(tenant_id = tenant.id, form_id, error = %error_chain(&err), "submission not stored");
                if let Some(parking) = &self.parking {
                    let parked = Parked { submission, response: response_text };
                    match parking.park(&parked).await {
                        Ok(()) => {
                            tracing::warn!(
                                tenant_id = tenant.id,
                                form_id,
                                submission_id,
                                "submission parked; the sweeper stores it once the table answers"
                            );
                            return FormResponse::result(&response);
                        }
                        Err(err) => {
                            tracing::error!(submission_id, error = %error_chain(&err), "submission not parked either");
                        }
                    }
                }
                // The write may still land (a lost answer, a stalled table): say
                // what is known. A retry with the same client_submission_id
                // returns the stored submission, or stores it once.
                return FormResponse::refused(
                    503,
                    "submission_unconfirmed",
                    "We could not confirm that your submission was saved. Please send it again; it will not be saved twice.",
                );
            }
        }
        tracing::info!(
            tenant_id = tenant.id,
            form_id,
            submission_id,
            priority = priority.as_str(),
            held = submission.held,
            "submission stored"
        );
        if submission.held.is_some() {
            return FormResponse::result(&response);
        }
        match self.publisher.publish(&submission.event).await {
            Ok(()) => {
                if let Err(err) = self.store.mark_published(&submission_id).await {
                    tracing::warn!(submission_id, error = %error_chain(&err), "published, but still in the outbox; the sweeper will publish again");
                }
            }
            Err(err) => {
                tracing::warn!(submission_id, error = %error_chain(&err), "FormSubmitted not published; left in the outbox for the sweeper");
            }
        }
        FormResponse::result(&response)
    }
}

fn form_error(message: &str, validation_errors: Vec<FieldErrors>) -> FormResponse {
    FormResponse::result(&FormFrame::error(message, validation_errors))
}

/// What staff see of a new submission: its session, its values under their
/// labels, and when it expires (the tenant's retention from now).
fn staff_view(
    tenant: &Tenant,
    form: &FormConfig,
    form_id: &str,
    data: &Map<String, Value>,
    session: SessionIds,
) -> StaffView {
    if session.dropped {
        tracing::warn!(
            tenant_id = tenant.id,
            form_id,
            "a malformed session_id or conversation_id was not kept"
        );
    }
    let days = tenant.config.retention_days().unwrap_or_else(|problem| {
        tracing::warn!(tenant_id = tenant.id, problem, "data_retention_days ignored: kept for the default");
        DEFAULT_RETENTION_DAYS
    });
    let values: BTreeMap<String, String> =
        data.iter().map(|(key, value)| (key.clone(), forms::value_text(value))).collect();
    let display = domain::fill::labelled_values(form, &values)
        .map(|(label, value)| (label.to_owned(), value.to_owned()))
        .collect();
    let expires_at = (now_epoch_millis() / 1000) as u64 + u64::from(days) * 24 * 3600;
    StaffView {
        session_id: session.session_id,
        conversation_id: session.conversation_id,
        form_title: form.title.clone().unwrap_or_else(|| form_id.to_owned()),
        display,
        expires_at,
    }
}

/// The channels fulfillment will run for this form: email when someone is to
/// be notified or confirmed, SMS when a number is configured, the handler
/// when the form names a downstream fulfillment.
fn planned_channels(tenant: &Tenant, form: &FormConfig, contact: &Contact) -> Vec<String> {
    let fulfillment = tenant.config.fulfillment_of(form);
    let internal = form.notifications.as_ref().and_then(|n| n.internal.as_ref()).filter(|i| i.enabled);
    let confirmation = contact.email.is_some() && tenant.config.confirms_applicant(form);
    let email = internal.is_some_and(|i| !i.recipients.is_empty())
        || fulfillment.is_some_and(|f| !f.email_to.0.is_empty())
        || confirmation;
    let sms = internal.is_some_and(|i| !i.sms_recipients.is_empty())
        || fulfillment.is_some_and(|f| !f.sms_to.0.is_empty());
    let handler = fulfillment
        .and_then(|f| f.kind.as_ref())
        .is_some_and(|kind| !matches!(kind, FulfillmentKind::Unknown(_)));
    [(channel::EMAIL, email), (channel::SMS, sms), (channel::HANDLER, handler)]
        .into_iter()
        .filter(|(_, planned)| *planned)
        .map(|(channel, _)| channel.to_owned())
        .collect()
}

/// Six base-36 characters: with the millisecond timestamp, ids do not collide.
fn short_random() -> String {
    (0..6).map(|_| fastrand::alphanumeric().to_ascii_lowercase()).collect()
}
