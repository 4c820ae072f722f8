//! The card decoder: any payload decodes or is refused, never a panic or an allocation beyond
//! the decode limit; whatever decodes encodes back to a payload that decodes to the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rq4d_protocol::card::CardMessage;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = CardMessage::decode(data) {
        let again = message.encode().expect("a decoded message encodes");
        assert_eq!(CardMessage::decode(&again).expect("and decodes"), message);
    }
});
