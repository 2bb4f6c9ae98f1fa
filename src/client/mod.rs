//! Talking to a Webhook channel as a client: timed HTTP exchanges and the async POST_URL
//! receiver.

pub mod error;
pub mod http;
pub mod pool;
pub mod receiver;

pub use http::{Bearer, Exchange, HttpClient, TransportError, Url};
pub use receiver::{Delivery, Receiver, Subscription};
