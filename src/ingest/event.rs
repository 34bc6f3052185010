//! The validated engagement event and the newtypes it is made of.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What a user did to an influencer (or one of their posts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Like,
    Unlike,
    Follow,
    Unfollow,
    Comment,
    View,
    Share,
    /// A like of a generated feed image; the event names the image, not the influencer.
    ImageLike,
    /// A view of a generated feed image.
    ImageView,
    /// "Not interested": the influencer is left out of the user's recommendations, feed
    /// slots and interest blends until an `unhide`. Carries no affinity.
    Hide,
    /// Takes a `hide` back.
    Unhide,
}

impl EventKind {
    pub const ALL: [EventKind; 11] = [
        Self::Like,
        Self::Unlike,
        Self::Follow,
        Self::Unfollow,
        Self::Comment,
        Self::View,
        Self::Share,
        Self::ImageLike,
        Self::ImageView,
        Self::Hide,
        Self::Unhide,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Like => "like",
            Self::Unlike => "unlike",
            Self::Follow => "follow",
            Self::Unfollow => "unfollow",
            Self::Comment => "comment",
            Self::View => "view",
            Self::Share => "share",
            Self::ImageLike => "image_like",
            Self::ImageView => "image_view",
            Self::Hide => "hide",
            Self::Unhide => "unhide",
        }
    }

    /// Kinds that name a generated image; their influencer is the image's.
    pub fn names_image(self) -> bool {
        matches!(self, Self::ImageLike | Self::ImageView)
    }

    /// The toggle this kind sets, if it is one: (which state, whether it turns it on).
    pub fn toggle(self) -> Option<(Toggle, bool)> {
        match self {
            Self::Like => Some((Toggle::Like, true)),
            Self::Unlike => Some((Toggle::Like, false)),
            Self::Follow => Some((Toggle::Follow, true)),
            Self::Unfollow => Some((Toggle::Follow, false)),
            Self::Hide => Some((Toggle::Hide, true)),
            Self::Unhide => Some((Toggle::Hide, false)),
            Self::Comment | Self::View | Self::Share | Self::ImageLike | Self::ImageView => None,
        }
    }
}

/// Current-state tables kept from toggle events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Toggle {
    Like,
    Follow,
    Hide,
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error(
    "unknown kind {0:?}; expected one of like, unlike, follow, unfollow, comment, view, share, hide, unhide, image_like, image_view"
)]
pub struct UnknownKind(pub String);

impl FromStr for EventKind {
    type Err = UnknownKind;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| UnknownKind(s.to_string()))
    }
}

/// Longest external id, event id or post id accepted.
pub const MAX_ID_LEN: usize = 128;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum IdError {
    #[error("{0} is empty")]
    Empty(&'static str),
    #[error("{0} is longer than {MAX_ID_LEN} bytes")]
    TooLong(&'static str),
    #[error("{0} contains control characters")]
    Control(&'static str),
}

/// An id chosen by a platform: non-empty, bounded, printable.
fn check_external_id(field: &'static str, value: &str) -> Result<(), IdError> {
    if value.is_empty() {
        return Err(IdError::Empty(field));
    }
    if value.len() > MAX_ID_LEN {
        return Err(IdError::TooLong(field));
    }
    if value.chars().any(char::is_control) {
        return Err(IdError::Control(field));
    }
    Ok(())
}

macro_rules! external_id {
    ($name:ident, $field:literal, $doc:literal) => {
        #[doc = $doc]
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        /// The id quoted, as error messages show it: `user "ana" not found`, never the
        /// type's name.
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl $name {
            pub fn parse(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                check_external_id($field, &value)?;
                Ok(Self(value))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_inner(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

external_id!(UserRef, "user", "A platform's user id.");
external_id!(InfluencerRef, "influencer", "A platform's influencer id.");
external_id!(EventId, "event_id", "A platform's idempotency key for one event.");
external_id!(PostId, "post_id", "A platform's post id.");

/// A stored generated image's id: the SHA-256 of its bytes, 64 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ImageId(String);

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("image id must be 64 lowercase hex digits (the image's SHA-256)")]
pub struct InvalidImageId;

impl ImageId {
    pub fn parse(value: impl Into<String>) -> Result<Self, InvalidImageId> {
        let value = value.into();
        let is_hex = |c: char| c.is_ascii_digit() || ('a'..='f').contains(&c);
        if value.len() == 64 && value.chars().all(is_hex) {
            Ok(Self(value))
        } else {
            Err(InvalidImageId)
        }
    }

    /// The id of these bytes.
    pub fn of(bytes: &[u8]) -> Self {
        use sha2::Digest;
        Self(hex::encode(sha2::Sha256::digest(bytes)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ImageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One event that passed validation.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub event_id: EventId,
    pub user: UserRef,
    pub influencer: InfluencerRef,
    pub kind: EventKind,
    pub occurred_at: DateTime<Utc>,
    pub post_id: Option<PostId>,
    /// Multiplier on the kind's affinity weight; stored as REAL.
    pub weight: f32,
    /// The generated image an image_like / image_view names.
    pub image: Option<ImageId>,
    /// The served list (recommendations, feed page, generation) this event follows from.
    pub served_id: Option<uuid::Uuid>,
}

/// An image_like / image_view before its influencer is looked up from the image.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageEvent {
    pub event_id: EventId,
    pub user: UserRef,
    pub kind: EventKind,
    pub occurred_at: DateTime<Utc>,
    pub weight: f32,
    pub image: ImageId,
    pub served_id: Option<uuid::Uuid>,
}

impl ImageEvent {
    pub fn resolve(self, influencer: InfluencerRef) -> Event {
        Event {
            event_id: self.event_id,
            user: self.user,
            influencer,
            kind: self.kind,
            occurred_at: self.occurred_at,
            post_id: None,
            weight: self.weight,
            image: Some(self.image),
            served_id: self.served_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_their_names() {
        for kind in EventKind::ALL {
            assert_eq!(kind.as_str().parse::<EventKind>().ok(), Some(kind));
        }
        assert!("likes".parse::<EventKind>().is_err());
    }

    #[test]
    fn external_ids_reject_empty_long_and_control_characters() {
        assert_eq!(UserRef::parse(""), Err(IdError::Empty("user")));
        assert_eq!(UserRef::parse("x".repeat(129)), Err(IdError::TooLong("user")));
        assert_eq!(UserRef::parse("a\nb"), Err(IdError::Control("user")));
        assert!(UserRef::parse("émile-42").is_ok());
    }

    #[test]
    fn image_ids_are_sha256_hex() {
        let id = ImageId::of(b"png bytes");
        assert_eq!(ImageId::parse(id.as_str()).ok(), Some(id.clone()));
        assert!(ImageId::parse(id.as_str().to_uppercase()).is_err());
        assert!(ImageId::parse("abc").is_err());
        assert!(EventKind::ImageLike.names_image() && !EventKind::Like.names_image());
    }

    #[test]
    fn only_like_and_follow_kinds_toggle_state() {
        assert_eq!(EventKind::Unfollow.toggle(), Some((Toggle::Follow, false)));
        assert_eq!(EventKind::Like.toggle(), Some((Toggle::Like, true)));
        assert_eq!(EventKind::Share.toggle(), None);
    }
}
