"""A score's breakdown as a person reads it (`handshake score explain EMAIL`)."""

from __future__ import annotations

from collections.abc import Sequence

from connector.scoring.engine import ContactLike, ScoreResult
from connector.scoring.lifecycle import TransitionLike

__all__ = ["render_explanation"]

SHOWN_ACTIVITIES = 5  # per rule: the biggest contributions


def render_explanation(
    contact: ContactLike, result: ScoreResult, transitions: Sequence[TransitionLike] = (),
    *, model_file: str = "", as_of: bool = False, not_yet: int = 0,
) -> str:
    """Plain text: verdict first, then fit, interest by rule with the activities behind it.
    `as_of` says the score was computed as of a past time (`result.scored_at`); `not_yet`
    counts the activities after it, which the score leaves out."""
    props = contact.properties
    name = " ".join(p for p in (props.get("firstname"), props.get("lastname")) if p)
    fit = result.fit
    lines = [
        f"{name or contact.email} <{contact.email}>  (HubSpot id {contact.hubspot_id})",
        f"Scored {'as of' if as_of else 'at'} {result.scored_at.isoformat()} with model "
        f"{result.model_version}" + (f" ({model_file})" if model_file else ""),
    ]
    if not_yet:
        lines.append(f"{not_yet} later activit{'ies' if not_yet != 1 else 'y'} not counted "
                     "(they occurred after that time)")
    lines += [
        "",
        ("MQL: yes - " if result.is_mql else "MQL: no - ") + result.mql_reason,
        f"Lifecycle stage: {result.stage or '(none)'}",
    ]
    if result.nurture_track:
        lines.append(f"Nurture track: {result.nurture_track}")
    lines += ["", f"FIT: {fit.points:g} points -> grade {fit.grade}"]
    for f in fit.contributions:
        shown = f" = {f.value}" if f.value else ""
        lines.append(f"  {f.points:+6g}  {f.rule}  ({f.field}{shown})")
    if fit.disqualified_by:
        lines.append(f"  disqualified: {fit.disqualified_by} (grade F whatever the points)")
    lines += ["", f"INTEREST: {result.interest:g} / 100"
              + (f" (decayed sum {result.raw_interest:.2f}, capped)"
                 if result.raw_interest > result.interest and not result.expired else "")]
    if result.expired:
        last = result.last_engagement_at.date().isoformat() if result.last_engagement_at else "never"
        lines.append(f"  expired: no scored engagement since {last}; interest counts as 0")
    by_rule: dict[str, list[float]] = {}
    for c in result.contributions:
        agg = by_rule.setdefault(c.rule, [0.0, 0.0])
        agg[0] += 1
        agg[1] += c.decayed
    for rule, (count, total) in sorted(by_rule.items(), key=lambda kv: -abs(kv[1][1])):
        lines.append(f"  {total:+7.2f}  {rule}  ({int(count)} action{'s' if count != 1 else ''})")
        items = sorted((c for c in result.contributions if c.rule == rule),
                       key=lambda c: -abs(c.decayed))
        for c in items[:SHOWN_ACTIVITIES]:
            lines.append(f"           {c.occurred_at.date().isoformat()}  {c.label}: "
                         f"{c.points:+g} -> {c.decayed:+.2f} {'then' if as_of else 'now'}")
        if len(items) > SHOWN_ACTIVITIES:
            lines.append(f"           ... and {len(items) - SHOWN_ACTIVITIES} more")
    if result.capped:
        lines.append(f"  caps applied: {', '.join(result.capped)}")
    if not result.contributions:
        lines.append("  no scored activity")
    if transitions:
        lines += ["", "LIFECYCLE HISTORY:"]
        lines += [f"  {t.at.isoformat()}  {t.from_stage or '(none)'} -> {t.to_stage}: {t.reason}"
                  for t in transitions]
    return "\n".join(lines) + "\n"
