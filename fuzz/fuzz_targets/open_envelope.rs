//! The sealed envelope: any bytes, opened by a node with a keyring and by one without — never a
//! panic; and the input sealed as a payload opens back to exactly the input.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use rq4d_protocol::seal::Sealer;
use rq4d_protocol::{Key, Keyring};

const TAG: u64 = 0x5eed;
const NOON: Duration = Duration::from_millis(1_796_299_200_000);

fuzz_target!(|data: &[u8]| {
    let mut keyless = Sealer::new(None, [1; 16]);
    let _ = keyless.open(data, TAG, NOON);
    let mut keyed = Sealer::new(Some(Keyring::single(Key::from_bytes([7; 32]))), [2; 16]);
    let _ = keyed.open(data, TAG, NOON);
    // And a genuine seal of the input as payload must open to exactly it.
    let mut sender = Sealer::new(Some(Keyring::single(Key::from_bytes([7; 32]))), [3; 16]);
    if let Ok(datagram) = sender.seal(rq4d_protocol::wire::Kind::Cards, TAG, data, NOON) {
        let opened = keyed.open(&datagram, TAG, NOON).expect("a genuine seal opens");
        assert_eq!(&opened.payload[..], data);
    }
});
