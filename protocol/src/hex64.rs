//! 64-bit ids (cluster ids, view digests) in two spellings: 16 hex digits where people read them
//! (JSON: the status API, `jq`), a plain integer where machines do (bincode on the wire, whose
//! bytes this leaves as they were). JSON numbers are doubles to most readers — `jq` prints
//! `5807480620098327000` for `5807480620098326798` — so JSON gets the string, the same spelling
//! `rq4d members` prints. Reading JSON takes either spelling.

use serde::de::{self, Visitor};
use serde::{Deserializer, Serializer};

/// For `#[serde(with = "crate::hex64")]`.
pub fn serialize<S: Serializer>(value: &u64, serializer: S) -> Result<S::Ok, S::Error> {
    if serializer.is_human_readable() {
        serializer.serialize_str(&format!("{value:016x}"))
    } else {
        serializer.serialize_u64(*value)
    }
}

/// For `#[serde(with = "crate::hex64")]`.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    if deserializer.is_human_readable() {
        deserializer.deserialize_any(HexOrNumber)
    } else {
        deserializer.deserialize_u64(HexOrNumber)
    }
}

struct HexOrNumber;

impl Visitor<'_> for HexOrNumber {
    type Value = u64;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a 64-bit id: 16 hex digits or an integer")
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<u64, E> {
        Ok(value)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<u64, E> {
        if text.is_empty() || text.len() > 16 {
            return Err(E::invalid_value(de::Unexpected::Str(text), &self));
        }
        u64::from_str_radix(text, 16)
            .map_err(|_| E::invalid_value(de::Unexpected::Str(text), &self))
    }
}

#[cfg(test)]
mod tests {
    use crate::card::{ClusterId, ViewDigest};

    const BIG: u64 = 5_807_480_620_098_326_798;

    #[test]
    fn json_spells_ids_as_hex_strings_and_reads_both_spellings() {
        let json = serde_json::to_string(&ClusterId(BIG)).expect("json");
        assert_eq!(json, "\"509850dac8ed110e\"");
        assert_eq!(
            serde_json::from_str::<ClusterId>(&json).expect("hex"),
            ClusterId(BIG)
        );
        let number = BIG.to_string();
        assert_eq!(
            serde_json::from_str::<ClusterId>(&number).expect("number"),
            ClusterId(BIG)
        );
        assert!(serde_json::from_str::<ClusterId>("\"not hex\"").is_err());
        assert!(serde_json::from_str::<ClusterId>("\"10000000000000000\"").is_err());
        let json = serde_json::to_string(&ViewDigest(7)).expect("json");
        assert_eq!(json, "\"0000000000000007\"");
    }

    #[test]
    fn the_wire_keeps_its_bytes() {
        let config = bincode::config::standard();
        let id = bincode::serde::encode_to_vec(ClusterId(BIG), config).expect("encode");
        let plain = bincode::serde::encode_to_vec(BIG, config).expect("encode");
        assert_eq!(id, plain, "the same bytes as the u64 before");
        let (back, _): (ClusterId, usize) =
            bincode::serde::decode_from_slice(&id, config).expect("decode");
        assert_eq!(back, ClusterId(BIG));
    }
}
