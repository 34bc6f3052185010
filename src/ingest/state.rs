//! What a batch of new events does to current state and affinity — pure, no I/O.
//!
//! A toggle (follow/like) row changes only when the incoming event is newer than the
//! event that set it, by (occurred_at, event_id), so state never depends on arrival order;
//! within a batch that reduces to the newest event per row (the database applies the same
//! rule against the stored row). Active toggles contribute to affinity through the
//! `affinity` view; the other kinds add to `affinity_activity`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::event::{EventKind, Toggle};
use crate::interest::affinity::AffinityModel;

/// An accepted event with its people resolved to internal ids.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedEvent {
    pub event_id: String,
    pub user_id: i64,
    pub influencer_id: i64,
    pub kind: EventKind,
    pub occurred_at: DateTime<Utc>,
    pub post_id: Option<String>,
    pub weight: f32,
    pub image_id: Option<String>,
    pub served_id: Option<uuid::Uuid>,
}

/// Identifies one row of `follows` or `hides` (post empty), or of `likes`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ToggleKey {
    pub user_id: i64,
    pub influencer_id: i64,
    pub post_id: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ToggleState {
    pub active: bool,
    pub weight: f32,
    pub changed_at: DateTime<Utc>,
    pub changed_by_event: String,
}

impl ToggleState {
    fn is_newer_than(&self, other: &ToggleState) -> bool {
        (self.changed_at, self.changed_by_event.as_str()) > (other.changed_at, other.changed_by_event.as_str())
    }
}

/// The newest incoming toggle per key, and summed contributions of the other kinds.
#[derive(Debug, Default)]
pub struct BatchEffects {
    pub follows: BTreeMap<ToggleKey, ToggleState>,
    pub likes: BTreeMap<ToggleKey, ToggleState>,
    pub hides: BTreeMap<ToggleKey, ToggleState>,
    pub activity: BTreeMap<(i64, i64), f64>,
}

impl BatchEffects {
    pub fn collect<'a>(events: impl IntoIterator<Item = &'a ResolvedEvent>, model: &AffinityModel) -> Self {
        let mut effects = Self::default();
        for event in events {
            match event.kind.toggle() {
                Some((toggle, active)) => {
                    let key = ToggleKey {
                        user_id: event.user_id,
                        influencer_id: event.influencer_id,
                        post_id: match toggle {
                            Toggle::Follow | Toggle::Hide => String::new(),
                            Toggle::Like => event.post_id.clone().unwrap_or_default(),
                        },
                    };
                    let incoming = ToggleState {
                        active,
                        weight: event.weight,
                        changed_at: event.occurred_at,
                        changed_by_event: event.event_id.clone(),
                    };
                    let table = effects.toggles_mut(toggle);
                    match table.get(&key) {
                        Some(current) if !incoming.is_newer_than(current) => {}
                        _ => {
                            table.insert(key, incoming);
                        }
                    }
                }
                None => {
                    let delta = model.contribution(event.kind, event.weight, event.occurred_at);
                    if delta != 0.0 {
                        *effects
                            .activity
                            .entry((event.user_id, event.influencer_id))
                            .or_insert(0.0) += delta;
                    }
                }
            }
        }
        effects
    }

    pub fn toggles(&self, toggle: Toggle) -> &BTreeMap<ToggleKey, ToggleState> {
        match toggle {
            Toggle::Follow => &self.follows,
            Toggle::Like => &self.likes,
            Toggle::Hide => &self.hides,
        }
    }

    fn toggles_mut(&mut self, toggle: Toggle) -> &mut BTreeMap<ToggleKey, ToggleState> {
        match toggle {
            Toggle::Follow => &mut self.follows,
            Toggle::Like => &mut self.likes,
            Toggle::Hide => &mut self.hides,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interest::AffinitySettings;

    fn model() -> AffinityModel {
        let weights = [
            (EventKind::Like, 1.0),
            (EventKind::Follow, 5.0),
            (EventKind::Share, 3.0),
        ]
        .into_iter()
        .collect();
        AffinityModel::new(&AffinitySettings {
            half_life_days: 30.0,
            weights,
        })
    }

    fn event(id: &str, kind: EventKind, at: &str) -> ResolvedEvent {
        ResolvedEvent {
            event_id: id.into(),
            user_id: 1,
            influencer_id: 2,
            kind,
            occurred_at: at.parse().expect("valid"),
            post_id: None,
            weight: 1.0,
            image_id: None,
            served_id: None,
        }
    }

    #[test]
    fn toggles_add_no_activity() {
        let follow = event("a", EventKind::Follow, "2026-05-01T00:00:00Z");
        assert!(BatchEffects::collect([&follow], &model()).activity.is_empty());
    }

    #[test]
    fn the_newest_toggle_in_a_batch_wins_whatever_the_order() {
        let unfollow = event("b", EventKind::Unfollow, "2026-05-02T00:00:00Z");
        let follow = event("a", EventKind::Follow, "2026-05-01T00:00:00Z");
        let effects = BatchEffects::collect([&unfollow, &follow], &model());
        let key = ToggleKey {
            user_id: 1,
            influencer_id: 2,
            post_id: String::new(),
        };
        assert_eq!(effects.follows.get(&key).map(|s| s.active), Some(false));
    }

    #[test]
    fn non_toggle_events_add_up() {
        let model = model();
        let a = event("a", EventKind::Share, "2026-05-01T00:00:00Z");
        let b = event("b", EventKind::Share, "2026-05-01T00:00:00Z");
        let effects = BatchEffects::collect([&a, &b], &model);
        let one = model.contribution(EventKind::Share, 1.0, a.occurred_at);
        assert_eq!(effects.activity[&(1, 2)], 2.0 * one);
    }
}
