//! Hands a form submission to its downstream handler: a Lambda function, an S3 archive or a webhook
