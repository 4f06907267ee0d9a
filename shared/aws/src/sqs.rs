//! The SQS adapter of the parking port (`ParkedSubmissionsQueue`).

use domain::parking::{Answer, Claimed, Parked, Parking, ParkingError};

#[derive(Clone)]
pub struct SqsParking {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsParking {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        Self { client, queue_url: queue_url.into() }
    }
}

fn parking_error<E: std::error::Error + Send + Sync + 'static>(
    operation: &'static str,
) -> impl FnOnce(E) -> ParkingError {
    move |e| ParkingError { operation, source: Box::new(e) }
}

impl Parking for SqsParking {
    fn park<'a>(&'a self, parked: &'a Parked) -> Answer<'a, ()> {
        Box::pin(self.send(parked))
    }

    fn take(&self) -> Answer<'_, Vec<Claimed>> {
        Box::pin(self.receive())
    }

    fn release<'a>(&'a self, receipt: &'a str) -> Answer<'a, ()> {
        Box::pin(self.delete(receipt))
    }
}

impl SqsParking {
    async fn send(&self, parked: &Parked) -> Result<(), ParkingError> {
        let body = serde_json::to_string(parked).map_err(parking_error("encode"))?;
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .send()
            .await
            .map_err(parking_error("SendMessage"))?;
        Ok(())
    }

    async fn receive(&self) -> Result<Vec<Claimed>, ParkingError> {
        let received = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(10)
            .send()
            .await
            .map_err(parking_error("ReceiveMessage"))?;
        Ok(received
            .messages()
            .iter()
            .filter_map(|message| {
                Some(Claimed {
                    receipt: message.receipt_handle()?.to_owned(),
                    parked: message.body().and_then(|body| serde_json::from_str(body).ok()),
                })
            })
            .collect())
    }

    async fn delete(&self, receipt: &str) -> Result<(), ParkingError> {
        self.client
            .delete_message()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt)
            .send()
            .await
            .map_err(parking_error("DeleteMessage"))?;
        Ok(())
    }
}
