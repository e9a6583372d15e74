//! Stripe's event objects, the fields tipping reads: `payment_intent.succeeded` and
//! `payment_intent.payment_failed` carry a PaymentIntent, `charge.refunded` a Charge
//! (whose `amount_refunded` is the total refunded so far). Only parsed once the
//! signature has been verified.

use std::collections::HashMap;

use onair_store::{PaymentChange, PaymentEvent};
use serde::Deserialize;

use crate::error::ApiError;

#[derive(Deserialize)]
struct Event {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    data: EventData,
}

#[derive(Deserialize)]
struct EventData {
    object: serde_json::Value,
}

#[derive(Deserialize)]
struct PaymentIntentObject {
    id: String,
    currency: String,
    #[serde(default)]
    metadata: HashMap<String, String>,
}

#[derive(Deserialize)]
struct ChargeObject {
    payment_intent: Option<String>,
    currency: String,
    amount_refunded: i64,
    #[serde(default)]
    metadata: HashMap<String, String>,
}

/// A verified event: one about a tip's payment, or one we acknowledge and ignore.
pub enum Parsed {
    Payment(PaymentEvent),
    Ignored(String),
}

pub fn parse(payload: &[u8]) -> Result<Parsed, ApiError> {
    let event: Event = serde_json::from_slice(payload).map_err(invalid)?;
    let object = event.data.object;
    let (payment_intent_id, currency, metadata, change) = match event.kind.as_str() {
        "payment_intent.succeeded" | "payment_intent.payment_failed" => {
            let intent: PaymentIntentObject = serde_json::from_value(object).map_err(invalid)?;
            let change = if event.kind == "payment_intent.succeeded" {
                PaymentChange::Succeeded
            } else {
                PaymentChange::Failed
            };
            (intent.id, intent.currency, intent.metadata, change)
        }
        "charge.refunded" => {
            let charge: ChargeObject = serde_json::from_value(object).map_err(invalid)?;
            let Some(payment_intent) = charge.payment_intent else {
                // A charge made without a PaymentIntent is not a tip.
                return Ok(Parsed::Ignored(event.kind));
            };
            let change = PaymentChange::Refunded {
                total_refunded: charge.amount_refunded,
            };
            (payment_intent, charge.currency, charge.metadata, change)
        }
        _ => return Ok(Parsed::Ignored(event.kind)),
    };
    Ok(Parsed::Payment(PaymentEvent {
        event_id: event.id,
        event_type: event.kind,
        tip_id: metadata.get("tip_id").and_then(|id| id.parse().ok()),
        payment_intent_id,
        currency,
        change,
    }))
}

fn invalid(error: serde_json::Error) -> ApiError {
    ApiError::InvalidBody(format!("not a Stripe event: {error}"))
}
