//! `khabar.v1.FeedEvent` around stored bytes: the article is written into the response as the
//! log stored it, in its `khabar.v1.Article` encoding, so a feed neither decodes nor encodes it
//! again, and subscribers share one copy of it.

use bytes::{Buf, BufMut, Bytes};
use prost::{
    DecodeError, Message,
    encoding::{self, DecodeContext, WireType},
};

use crate::pb::khabar::v1 as pb;

/// A `khabar.v1.FeedEvent` whose article is already encoded. The server's feed sends this type;
/// on the wire it is exactly a `FeedEvent`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EncodedFeedEvent {
    /// Position in the log (field 1).
    pub cursor: u64,
    /// A `khabar.v1.EventKind` value (field 2).
    pub kind: i32,
    /// The encoded `khabar.v1.Article` (field 3); absent in checkpoints.
    pub article: Option<Bytes>,
    /// When the change was logged, or when the checkpoint was sent (field 4).
    pub timestamp: Option<pbjson_types::Timestamp>,
}

impl EncodedFeedEvent {
    /// An event of `kind` carrying stored article bytes.
    pub fn event(
        cursor: u64,
        kind: pb::EventKind,
        article: Bytes,
        timestamp: pbjson_types::Timestamp,
    ) -> Self {
        Self {
            cursor,
            kind: kind.into(),
            article: Some(article),
            timestamp: Some(timestamp),
        }
    }
}

impl Message for EncodedFeedEvent {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        if self.cursor != 0 {
            encoding::uint64::encode(1, &self.cursor, buf);
        }
        if self.kind != 0 {
            encoding::int32::encode(2, &self.kind, buf);
        }
        if let Some(article) = &self.article {
            encoding::bytes::encode(3, article, buf);
        }
        if let Some(timestamp) = &self.timestamp {
            encoding::message::encode(4, timestamp, buf);
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        match tag {
            1 => encoding::uint64::merge(wire_type, &mut self.cursor, buf, ctx),
            2 => encoding::int32::merge(wire_type, &mut self.kind, buf, ctx),
            3 => encoding::bytes::merge(
                wire_type,
                self.article.get_or_insert_with(Bytes::new),
                buf,
                ctx,
            ),
            4 => encoding::message::merge(
                wire_type,
                self.timestamp.get_or_insert_with(Default::default),
                buf,
                ctx,
            ),
            _ => encoding::skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        (if self.cursor != 0 {
            encoding::uint64::encoded_len(1, &self.cursor)
        } else {
            0
        }) + (if self.kind != 0 {
            encoding::int32::encoded_len(2, &self.kind)
        } else {
            0
        }) + self
            .article
            .as_ref()
            .map_or(0, |a| encoding::bytes::encoded_len(3, a))
            + self
                .timestamp
                .as_ref()
                .map_or(0, |t| encoding::message::encoded_len(4, t))
    }

    fn clear(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn article() -> pb::Article {
        pb::Article {
            id: "01KAVJ0G0T8RQS2D5W8MZ3C6XE".into(),
            headline: "أمريكا تتخلّى عن دعم المعارضة".into(),
            tags: vec!["سوريا".into()],
            version: 3,
            ..pb::Article::default()
        }
    }

    #[test]
    fn encodes_exactly_as_a_feed_event() {
        let timestamp = pbjson_types::Timestamp {
            seconds: 1_800_000_000,
            nanos: 5,
        };
        let encoded = EncodedFeedEvent::event(
            42,
            pb::EventKind::Updated,
            Bytes::from(article().encode_to_vec()),
            timestamp,
        );
        let expected = pb::FeedEvent {
            cursor: 42,
            kind: pb::EventKind::Updated.into(),
            article: Some(article()),
            timestamp: Some(timestamp),
        };
        let bytes = encoded.encode_to_vec();
        assert_eq!(bytes, expected.encode_to_vec());
        assert_eq!(encoded.encoded_len(), bytes.len());
        assert_eq!(pb::FeedEvent::decode(&bytes[..]).unwrap(), expected);
        assert_eq!(EncodedFeedEvent::decode(&bytes[..]).unwrap(), encoded);
    }

    #[test]
    fn a_checkpoint_has_no_article() {
        let checkpoint = EncodedFeedEvent {
            cursor: 7,
            kind: pb::EventKind::Checkpoint.into(),
            article: None,
            timestamp: Some(pbjson_types::Timestamp::default()),
        };
        let decoded = pb::FeedEvent::decode(&checkpoint.encode_to_vec()[..]).unwrap();
        assert_eq!(decoded.cursor, 7);
        assert_eq!(decoded.kind(), pb::EventKind::Checkpoint);
        assert!(decoded.article.is_none());
    }
}
