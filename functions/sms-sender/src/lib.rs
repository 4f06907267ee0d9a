//! Sends the SMS alert of a form submission (SNS), within the tenant's monthly quota
