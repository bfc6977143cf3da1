"""The spotting state machine on region motion with exactly known profiles.

The engine's region-vector function is replaced by one that returns the
difference of a known displacement field between two frames (plus a little
deterministic noise), so every rule is checked without flow or video.
"""

import itertools

import numpy as np
import pytest

from microexpr.regions import REGION_NAMES
from microexpr.spotter import FrameRecord, SpotterConfig, TrackSpotter

IOD = 69.0
FPS = 30.0
SMILE = {  # px at the apex; y down, the subject's right on the image's left
    "mouth_corner_right": (-1.0, -2.0), "mouth_corner_left": (1.0, -2.0),
    "cheek_right": (0.0, -1.2), "cheek_left": (0.0, -1.2),
}
BROW_RAISE = {"brow_inner_right": (0.0, -1.6), "brow_inner_left": (0.0, -1.6),
              "brow_outer_right": (0.0, -1.4), "brow_outer_left": (0.0, -1.4)}


def raised_cosine(t, onset, apex, offset):
    """0 before onset, 1 at apex, 0 after offset; smooth, still at the apex."""
    t = np.asarray(t, dtype=float)
    out = np.zeros_like(t)
    rise = (t > onset) & (t <= apex)
    out[rise] = 0.5 - 0.5 * np.cos(np.pi * (t[rise] - onset) / (apex - onset))
    fall = (t > apex) & (t < offset)
    out[fall] = 0.5 + 0.5 * np.cos(np.pi * (t[fall] - apex) / (offset - apex))
    return out


def field(pattern, scale):
    out = np.zeros((len(REGION_NAMES), 2))
    for name, vec in pattern.items():
        out[REGION_NAMES.index(name)] = np.asarray(vec) * scale
    return out


def run(duration, components, *, fps=FPS, seed=0, aperture=lambda t: 0.3, pose=None, opening=None):
    """Push ``duration`` s of frames; ``components`` is a list of (pattern, profile(t)).

    ``pose(t)``: the frame -> crop similarity (2x3) of each frame;
    ``opening(t)``: the mouth's opening velocity, IOD/s.
    """
    times = np.arange(0.0, duration, 1.0 / fps)
    disp = {i: sum((field(p, f(t)) for p, f in components), np.zeros((len(REGION_NAMES), 2)))
            for i, t in enumerate(times)}

    def vectors(ref, cur):
        rng = np.random.default_rng(1000 * ref.index + cur.index + seed)
        return disp[cur.index] - disp[ref.index] + rng.normal(0.0, 0.03, (len(REGION_NAMES), 2))

    spotter = TrackSpotter(0, IOD, vectors, SpotterConfig.for_mode("offline"))
    crop = np.zeros((160, 160), np.uint8)
    events = []
    for i, t in enumerate(times):
        record = FrameRecord(t=float(t), index=i, crop=crop, points=np.zeros((1, 2)),
                             to_crop=None if pose is None else pose(t))
        events += spotter.push(record, aperture=float(aperture(t)), lip_gap=0.05,
                               opening_velocity=None if opening is None else float(opening(t)),
                               rigid_shape=None)
    events += spotter.flush()
    return [e for e in events if e.kind != "blink"]


def overlap(event, onset, offset):
    inter = min(event.offset, offset) - max(event.onset, onset)
    union = max(event.offset, offset) - min(event.onset, onset)
    return inter / union


def test_slow_macro_expression_is_one_event_through_its_still_apex():
    # Rise 1.2 s, fall 1.6 s: the face is nearly still around the apex, and
    # the release must not be taken for a new movement.
    events = run(8.0, [(SMILE, lambda t: raised_cosine(t, 2.0, 3.2, 4.8))])
    assert len(events) == 1, events
    (event,) = events
    assert event.kind == "macro"
    assert overlap(event, 2.0, 4.8) >= 0.5
    assert event.emotion == "happiness"


def test_macro_expression_rising_too_slowly_for_the_short_lag_is_found():
    # 1.6 px at the mouth corners reached over 2 s: under 0.4 px per 0.3 s
    # (below the floor), about 1 px per second.
    faint_smile = {name: tuple(0.7 * v for v in vec) for name, vec in SMILE.items()}
    events = run(9.0, [(faint_smile, lambda t: raised_cosine(t, 2.0, 4.0, 5.5))])
    assert len(events) == 1, events
    assert events[0].kind == "macro" and overlap(events[0], 2.0, 5.5) >= 0.5


def test_micro_expression_is_found_with_its_timing():
    events = run(6.0, [(BROW_RAISE, lambda t: raised_cosine(t, 3.0, 3.08, 3.2))])
    assert len(events) == 1, events
    (event,) = events
    assert event.kind == "micro"
    assert overlap(event, 3.0, 3.2) >= 0.5
    assert {1, 2} <= set(event.aus)


def test_micro_expression_soon_after_a_lasting_shift_is_not_swallowed():
    # A pose or lighting step that never returns, then a brief expression
    # while the shifted candidate is still open.
    step = {"mouth_corner_right": (0.0, 1.0), "mouth_corner_left": (0.0, 1.0),
            "chin": (0.0, 1.2), "lower_lip": (0.0, 1.0)}
    events = run(8.0, [(step, lambda t: np.clip((t - 2.0) / 0.3, 0.0, 1.0)),
                       (BROW_RAISE, lambda t: raised_cosine(t, 2.9, 3.0, 3.15))])
    micro = [e for e in events if e.kind == "micro"]
    assert any(overlap(e, 2.9, 3.15) >= 0.5 for e in micro), events


@pytest.mark.parametrize("fps", [25.0, 60.0, 200.0])
def test_micro_expression_ends_where_its_fall_stops(fps):
    # The brows fall back to 30 % of their apex by 3.14 s and that part
    # lingers, fading over half a second (compression refreshes it block by
    # block): the expression is 3.0-3.14 s, not 3.0-3.5.
    fading_tail = lambda t: (0.3 - ramp(t, 3.14, 3.7, 0.3)) * (t > 3.06)
    events = run(7.0, [(BROW_RAISE, lambda t: np.maximum(raised_cosine(t, 3.0, 3.06, 3.2), fading_tail(t)))],
                 fps=fps)
    assert len(events) == 1, events
    (event,) = events
    assert event.kind == "micro" and overlap(event, 3.0, 3.14) >= 0.5, event


@pytest.mark.parametrize("fps", [25.0, 60.0, 200.0])
def test_micro_expression_onset_does_not_lag_at_high_frame_rates(fps):
    # A brief rise passes a fifth of its apex ~0.03 s after it began: one
    # frame at 25 fps, six at 200. The onset must not trail by the difference.
    events = run(6.0, [(BROW_RAISE, lambda t: raised_cosine(t, 3.0, 3.1, 3.25))], fps=fps)
    assert len(events) == 1, events
    assert abs(events[0].onset - 3.0) <= 0.01, events[0]


@pytest.mark.parametrize("fps", [25.0, 60.0, 200.0])
def test_event_timing_does_not_depend_on_the_frame_rate(fps):
    events = run(7.0, [(SMILE, lambda t: raised_cosine(t, 2.0, 2.5, 3.2))], fps=fps)
    assert len(events) == 1, events
    assert overlap(events[0], 2.0, 3.2) >= 0.5


LIDS_CLOSING = {"eye_upper_right": (0.0, 6.0), "eye_upper_left": (0.0, 6.0),
                "eye_lower_right": (0.0, 1.0), "eye_lower_left": (0.0, 1.0),
                "brow_inner_right": (0.0, 0.5), "brow_inner_left": (0.0, 0.5)}


def blink(t, onset=3.3, offset=3.55):
    return raised_cosine(t, onset, onset + 0.4 * (offset - onset), offset)


@pytest.mark.parametrize("fps", [25.0, 200.0])
def test_faint_macro_expression_reaches_out_to_its_onset_and_offset(fps):
    # Peak activity about twice the threshold: the largest region crosses the
    # end level a quarter of the way into the rise and fall; the projected
    # profile of all four regions is followed further out.
    faint_smile = {name: tuple(0.4 * v for v in vec) for name, vec in SMILE.items()}
    events = run(9.0, [(faint_smile, lambda t: raised_cosine(t, 2.0, 3.2, 5.0))], fps=fps)
    assert len(events) == 1, events
    (event,) = events
    assert event.onset < 2.25 and event.offset > 4.4, event
    assert overlap(event, 2.0, 5.0) >= 0.7


@pytest.mark.parametrize("fps", [25.0, 200.0])
def test_macro_length_movement_barely_over_the_noise_is_not_reported(fps):
    # Over seconds, drift and lighting cross a threshold more easily than in
    # a brief flash: a macro-length movement must peak at macro_min_peak
    # times it (the faint smile above, at 0.4, does; this one, at 0.2, not:
    # both corners move alike, which reads sqrt(2) times one corner's noise).
    fainter_smile = {name: tuple(0.2 * v for v in vec) for name, vec in SMILE.items()}
    assert run(9.0, [(fainter_smile, lambda t: raised_cosine(t, 2.0, 3.2, 5.0))], fps=fps) == []


def test_blink_during_a_smile_leaves_the_smile():
    # The lids' motion dwarfs the mouth's; the smile must survive the blink.
    events = run(8.0, [(SMILE, lambda t: raised_cosine(t, 2.0, 3.2, 4.8)), (LIDS_CLOSING, blink)],
                 aperture=lambda t: 0.3 * (1.0 - 0.8 * blink(t)))
    assert len(events) == 1, events
    assert events[0].kind == "macro" and overlap(events[0], 2.0, 4.8) >= 0.5
    assert "eyes" not in events[0].regions


def held(t, onset, apex, release, offset):
    """0 before onset, rising to 1 at apex, held until release, back to 0 at offset."""
    t = np.asarray(t, dtype=float)
    return np.where(t <= release, raised_cosine(np.minimum(t, apex), onset, apex, apex + 1.0),
                    raised_cosine(t, release - (apex - onset), release, offset))


def test_movement_during_a_held_macro_expression_does_not_erase_it():
    # A smile held for 2 s, and a brow twitch while it is held: the twitch
    # starts a new candidate, the smile must still end as its own event.
    events = run(9.0, [(SMILE, lambda t: held(t, 2.0, 2.6, 4.6, 5.3)),
                       (BROW_RAISE, lambda t: raised_cosine(t, 3.6, 3.7, 3.85))])
    macro = [e for e in events if e.kind == "macro"]
    assert len(macro) == 1 and overlap(macro[0], 2.0, 5.3) >= 0.5, events
    assert macro[0].emotion == "happiness"
    assert any(e.kind == "micro" and overlap(e, 3.6, 3.85) >= 0.5 for e in events), events


def ramp(t, start, end, top):
    """0 before start, rising linearly to ``top`` at end, held after."""
    return top * np.clip((np.asarray(t, dtype=float) - start) / (end - start), 0.0, 1.0)


MOUTH_CORNERS = {"mouth_corner_right": (-1.0, -2.0), "mouth_corner_left": (1.0, -2.0)}
DRIFT = {"cheek_right": (0.0, -1.0), "brow_outer_left": (0.0, -1.0)}


@pytest.mark.parametrize("fps", [30.0, 200.0])
@pytest.mark.parametrize("strength", [0.3, 0.4])
def test_micro_expression_is_not_held_open_by_drift_elsewhere(fps, strength):
    # A faint mouth flash (0.25 s) while the cheek and a brow drift slowly,
    # never fast enough to start an event: the drift keeps the anchored
    # activity above the end level, but the mouth's own motion is back.
    flash = {name: (strength * x, strength * y) for name, (x, y) in MOUTH_CORNERS.items()}
    events = run(8.0, [(flash, lambda t: raised_cosine(t, 3.0, 3.1, 3.25)),
                       (DRIFT, lambda t: ramp(t, 2.0, 3.5, 0.55))], fps=fps)
    assert len(events) == 1, events
    assert events[0].kind == "micro" and overlap(events[0], 3.0, 3.25) >= 0.5, events


def held_tail(t, onset, apex, offset, hold_until, level):
    """A rise and fall whose last ``level`` of the apex an encoder holds until ``hold_until``."""
    t = np.asarray(t, dtype=float)
    shape = raised_cosine(t, onset, apex, offset)
    return np.where((t > apex) & (t < hold_until), np.maximum(shape, level), shape)


@pytest.mark.parametrize("fps", [60.0, 200.0])
def test_micro_expression_whose_tail_the_codec_holds_ends_with_its_own_motion(fps):
    # Fast video at a high compression keeps part of a flash in the picture
    # (skipped blocks) until the encoder refreshes it: the activity lingers
    # over the end level, but the expression was over when its motion fell.
    events = run(7.0, [(BROW_RAISE, lambda t: held_tail(t, 3.0, 3.08, 3.2, 3.55, 0.3))], fps=fps)
    assert len(events) == 1, events
    assert events[0].kind == "micro" and overlap(events[0], 3.0, 3.2) >= 0.5, events


@pytest.mark.parametrize("fps", [25.0, 60.0, 200.0])
def test_movement_after_a_slowly_releasing_shift_is_its_own_event(fps):
    # A shift that eases back over seconds keeps its candidate from going
    # stale; that must not also forget how long the face had been still, or
    # a brow raise 2.4 s later is swallowed into one 3.5 s event with it.
    shift = {"mouth_corner_right": (0.0, 1.0), "mouth_corner_left": (0.0, 1.0),
             "chin": (0.0, 1.2), "lower_lip": (0.0, 1.0)}
    easing = lambda t: ramp(t, 2.0, 2.3, 1.0) - ramp(t, 2.3, 6.3, 0.45)
    brows = {name: (2.0 * x, 2.0 * y) for name, (x, y) in BROW_RAISE.items()}
    events = run(9.0, [(shift, easing), (brows, lambda t: raised_cosine(t, 4.4, 5.0, 5.8))], fps=fps)
    assert any(overlap(e, 4.4, 5.8) >= 0.5 and e.regions == ["brows"] for e in events), events


@pytest.mark.parametrize("fps", [25.0, 60.0, 200.0])
@pytest.mark.parametrize("profile", [(3.0, 3.6, 5.0), (3.0, 4.0, 6.5)])
def test_strong_macro_expression_leaves_no_event_behind(fps, profile):
    # The event ends when the activity is down to a fraction of a large peak;
    # the rest of the fall moves the face from the next reference and never
    # comes back: a shift, not a second expression.
    broad_smile = {name: (2.0 * x, 2.0 * y) for name, (x, y) in SMILE.items()}
    onset, apex, offset = profile
    events = run(10.0, [(broad_smile, lambda t: raised_cosine(t, onset, apex, offset))], fps=fps)
    assert len(events) == 1, events
    assert events[0].kind == "macro" and overlap(events[0], onset, offset) >= 0.7, events


@pytest.mark.parametrize("fps", [25.0, 200.0])
def test_expression_overtaken_by_a_larger_one_keeps_its_own_apex(fps):
    # Brows raised and held; a broad smile starts while they are still up.
    # The brows' candidate is parked, and its anchored profile then holds the
    # smile too: its apex, regions and AUs are its own, not the smile's.
    events = run(9.0, [(BROW_RAISE, lambda t: held(t, 2.0, 2.5, 3.4, 4.2)),
                       (SMILE, lambda t: raised_cosine(t, 3.3, 3.9, 4.6))], fps=fps)
    brows = [e for e in events if "brows" in e.regions and overlap(e, 2.0, 4.2) >= 0.5]
    assert len(brows) == 1, events
    assert 2.3 <= brows[0].apex <= 3.4 and 2 in brows[0].aus, brows


def test_blink_alone_is_not_an_expression():
    events = run(6.0, [(LIDS_CLOSING, blink)], aperture=lambda t: 0.3 * (1.0 - 0.8 * blink(t)))
    assert events == []


def test_micro_expression_just_before_a_blink_is_kept():
    events = run(6.0, [(BROW_RAISE, lambda t: raised_cosine(t, 3.0, 3.08, 3.2)),
                       (LIDS_CLOSING, lambda t: blink(t, 3.35, 3.6))],
                 aperture=lambda t: 0.3 * (1.0 - 0.8 * blink(t, 3.35, 3.6)))
    assert len(events) == 1, events
    assert events[0].kind == "micro" and overlap(events[0], 3.0, 3.2) >= 0.5


def test_blink_on_a_candidates_first_frames_does_not_take_its_apex():
    # Anchored just before a blink (the lids' frames cannot be anchors): the
    # lids jolt the brows on its first frames, and the expression peaks on
    # the first clear frame after. Bridged over the blink up from the
    # anchor's zero, the jolt no longer ties with that apex (held-out
    # clip_000 at 13.5 s lost a lip raise to it).
    from microexpr.spotter import _Candidate

    spotter = TrackSpotter(0, IOD, lambda ref, cur: np.zeros((len(REGION_NAMES), 2)), SpotterConfig())
    floor = SpotterConfig().floor * IOD
    jolt = {"brow_inner_right": (0.0, -2.8 * floor)}
    lip = {"upper_lip": (0.0, -1.6 * floor)}
    profile = [field(jolt, 1.0) if i == 2 else field(lip, scale) for i, scale in
               enumerate([0, 0, 0, 0, 0.2, 0.5, 1.0, 0.9, 0.5, 0.1])]
    crop = np.zeros((4, 4), np.uint8)
    records = [FrameRecord(t=0.04 * (i + 1), index=i + 1, crop=crop, points=np.zeros((1, 2)),
                           eyes_closing=i < 6) for i in range(len(profile))]
    cand = _Candidate(anchor=FrameRecord(t=0.0, index=0, crop=crop, points=np.zeros((1, 2))), trigger_t=0.4,
                      times=[r.t for r in records], vectors=profile, records=records)
    acts = np.array([spotter._activity(v, r.t, False, r.eyes_closing, age=r.t)[1] for v, r in zip(profile, records)])
    assert int(np.argmax(acts)) == 2  # the jolt
    assert int(np.argmax(spotter._across_blinks(cand, acts))) == 6


def test_micro_expression_during_the_warm_up_is_found():
    # Over before the noise level is known (warmup, 1 s): judged once it is.
    events = run(4.0, [(BROW_RAISE, lambda t: raised_cosine(t, 0.55, 0.63, 0.75))])
    assert len(events) == 1, events
    assert events[0].kind == "micro" and overlap(events[0], 0.55, 0.75) >= 0.5


BROW_LOWER = {"brow_inner_right": (0.64, 1.28), "brow_inner_left": (-0.64, 1.28),
              "brow_outer_right": (0.0, 0.8), "brow_outer_left": (0.0, 0.8)}


def test_brows_lowered_through_two_blinks_are_one_expression():
    # The lids move about five times as far as the brows: neither blink may
    # become the expression's apex, nor make its brows count as the blink's.
    def blinks(t):
        return blink(t, 2.5, 2.75) + blink(t, 4.0, 4.25)

    events = run(9.0, [(BROW_LOWER, lambda t: held(t, 2.0, 3.0, 5.0, 5.8)), (LIDS_CLOSING, blinks)],
                 aperture=lambda t: 0.3 * (1.0 - 0.8 * blinks(t)))
    assert len(events) == 1, events
    assert events[0].kind == "macro" and overlap(events[0], 2.0, 5.8) >= 0.5
    assert events[0].regions == ["brows"] and 4 in events[0].aus


@pytest.mark.parametrize("fps", [60.0, 200.0])
def test_brief_frown_whose_fall_the_codec_holds_up_ends_where_the_fall_stalled(fps):
    # x264 at a high crf leaves blocks of a brief deformation uncoded: the
    # brows fall half way back in 0.04 s, then a residue lingers and fades
    # (held-out clip_003_200fps at 4.0 s, crf 28). The expression is the
    # rise and the fall, not the residue.
    def coded(t):
        t = np.asarray(t, dtype=float)
        return np.where(t <= 3.04, raised_cosine(t, 3.0, 3.04, 3.08),
                        np.interp(t, [3.04, 3.08, 3.2, 3.3, 3.7], [1.0, 0.5, 0.5, 0.4, 0.0]))

    frown = {name: tuple(1.5 * v for v in vec) for name, vec in BROW_LOWER.items()}
    events = run(6.0, [(frown, coded)], fps=fps)
    assert len(events) == 1, events
    assert events[0].kind == "micro" and overlap(events[0], 3.0, 3.09) >= 0.5, events


def test_event_still_open_when_the_stream_stops_ends_where_it_settled():
    events = run(4.0, [(SMILE, lambda t: raised_cosine(t, 2.0, 2.2, 2.45))])
    assert len(events) == 1, events
    assert events[0].offset < 3.0


def test_idle_checks_do_not_grow_with_the_frame_rate():
    # Each idle check is a chance for noise to cross a threshold: a 200 fps
    # stream must not get more of them per second than a 60 fps one.
    calls = []

    def vectors(ref, cur):
        calls.append(cur.t)
        return np.zeros((len(REGION_NAMES), 2))

    spotter = TrackSpotter(0, IOD, vectors, SpotterConfig.for_mode("offline"))
    crop = np.zeros((4, 4), np.uint8)
    for i, t in enumerate(np.arange(0.0, 3.0, 1.0 / 200.0)):
        record = FrameRecord(t=float(t), index=i, crop=crop, points=np.zeros((1, 2)))
        spotter.push(record, aperture=0.3, lip_gap=0.05, opening_velocity=None, rigid_shape=None)
    config = SpotterConfig()
    # The long-lag check chains the short-lag ones: no comparison of its own.
    assert len(calls) == len(np.unique(calls)) <= 3.0 * config.check_rate
    assert np.diff(calls).min() >= 0.9 / config.check_rate - 1e-9


def test_one_comparison_per_frame_and_the_back_fill_spread_over_the_next_frames():
    # The recent motion of an expression under way is the difference of two
    # anchored profiles: the core runs one flow a frame. The back-fill of the
    # frames before a start (18 here) is asked backfill_per_frame at a time
    # and collected a frame later (the pipeline runs it beside the next
    # frame), so no frame stalls a live stream.
    calls, asked = [], []
    times = np.arange(0.0, 8.0, 1.0 / FPS)
    disp = {i: field(SMILE, raised_cosine(t, 2.0, 3.0, 4.4))
            + field(BROW_RAISE, raised_cosine(t, 5.5, 5.6, 5.75)) for i, t in enumerate(times)}

    def compare(ref, cur):
        rng = np.random.default_rng(1000 * ref.index + cur.index)
        return disp[cur.index] - disp[ref.index] + rng.normal(0.0, 0.03, (len(REGION_NAMES), 2))

    def vectors(ref, cur):
        calls.append(cur.index)
        return compare(ref, cur)

    def later(pairs):
        asked.append(len(pairs))
        return lambda: [compare(*pair) for pair in pairs]

    config = SpotterConfig.for_mode("offline")
    spotter = TrackSpotter(0, IOD, vectors, config, region_vectors_later=later)
    crop = np.zeros((4, 4), np.uint8)
    events, per_frame, backfill, returned_at = [], [], [], []
    for i, t in enumerate(times):
        before, asked_before = len(calls), len(asked)
        record = FrameRecord(t=float(t), index=i, crop=crop, points=np.zeros((1, 2)))
        found = spotter.push(record, aperture=0.3, lip_gap=0.05, opening_velocity=None, rigid_shape=None)
        events += found
        returned_at += [float(t)] * len(found)
        per_frame.append(len(calls) - before)
        backfill.append(sum(asked[asked_before:]))
    assert [e.kind for e in events] == ["macro", "micro"], events
    # At most the idle check and the comparison with the anchor, where one starts.
    assert max(per_frame) == 2, per_frame
    assert max(backfill) == config.backfill_per_frame, backfill
    # Two back-fills, each spread over frames.
    spells = [len(list(run)) for busy, run in itertools.groupby(n > 0 for n in backfill) if busy]
    assert len(spells) == 2 and min(spells) >= 2, backfill
    assert sum(backfill) <= 2 * (2 + FPS * config.anchor_lag)
    # Events carry the time of the frame that returned them, not of a replayed one.
    assert [e.detected_at for e in events] == returned_at


def _speech_velocities(profile, seconds, *, seed=0, noise=0.01, rate=30.0):
    """Mouth opening velocities (IOD/s) sampled at ``rate``: ``profile(t)`` plus Gaussian noise."""
    rng = np.random.default_rng(seed)
    times = np.arange(0.0, seconds, 1.0 / rate)
    return times, profile(times) + noise * rng.standard_normal(times.size)


def _spells(times, velocities):
    from microexpr.spotter import SpeechDetector

    speech = SpeechDetector(SpotterConfig().speech_power)
    active = [speech.push(t, float("nan"), v) for t, v in zip(times, velocities)]
    return speech.spells, np.asarray(active)


@pytest.mark.parametrize("rate", [30.0, 33.3, 200.0])
def test_syllables_at_4_5_hz_are_speech(rate):
    def talking(t):
        return np.where(t >= 3.0, 0.1 * np.sin(2 * np.pi * 4.5 * t), 0.0)

    times, velocities = _speech_velocities(talking, 6.0, rate=rate)
    spells, active = _spells(times, velocities)
    assert spells and spells[0][0] < 3.6 and spells[-1][1] > 5.5
    assert active[times > 4.0].mean() > 0.9 and not active[times < 2.5].any()


@pytest.mark.parametrize("rate", [30.0, 200.0])
def test_speech_from_the_first_second_is_speech(rate):
    # A clip that opens talking: most of the velocity history is speech, which
    # must not raise the noise level the syllables are measured against.
    def talking(t):
        return np.where(t >= 0.8, 0.07 * np.sin(2 * np.pi * 3.5 * (t - 0.8)), 0.0)

    times, velocities = _speech_velocities(talking, 4.0, rate=rate)
    spells, active = _spells(times, velocities)
    assert spells and spells[0][0] < 1.5, spells
    assert active[times > 2.0].mean() > 0.9 and not active[times < 0.1].any()


def _shifted(dx):
    """The frame -> crop similarity of a face moved ``dx`` px to the right in the frame."""
    return np.array([[1.0, 0.0, -200.0 - dx], [0.0, 1.0, -150.0]])


def test_head_motion_between_two_frames_in_crop_pixels():
    crop = np.zeros((160, 160), np.uint8)
    still = FrameRecord(t=0.0, index=0, crop=crop, points=np.zeros((1, 2)), to_crop=_shifted(0.0))
    moved = FrameRecord(t=0.1, index=1, crop=crop, points=np.zeros((1, 2)), to_crop=_shifted(12.0))
    assert TrackSpotter._head_motion(still, still) == pytest.approx(0.0, abs=1e-9)
    assert TrackSpotter._head_motion(still, moved) == pytest.approx(12.0)
    angle = np.radians(2.0)  # turned about the crop centre: the crop's edge moves 80 px * angle
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    centre = np.array([80.0, 80.0])
    turned_pose = np.hstack([rotation, (centre - rotation @ centre)[:, None]]) @ np.vstack([_shifted(0.0), [0, 0, 1]])
    turned = FrameRecord(t=0.1, index=1, crop=crop, points=np.zeros((1, 2)), to_crop=turned_pose)
    assert TrackSpotter._head_motion(still, turned) == pytest.approx(80.0 * 2 * np.sin(angle / 2))


LOWER_FACE_RESIDUAL = {"mouth_corner_right": (0.0, 0.9), "mouth_corner_left": (0.0, 0.9),
                       "chin": (0.0, 1.0), "lower_lip": (0.0, 0.8)}


def test_alignment_residual_of_a_quick_head_move_is_not_an_expression():
    # Looking away and back (25 px in 0.5 s) leaves the lower face of the
    # aligned crops out by ~1 px: the same residual without head motion is
    # an expression, with it the head's motion explains it.
    look = lambda t: np.sin(np.pi * np.clip((t - 3.0) / 0.5, 0.0, 1.0)) ** 2  # noqa: E731
    components = [(LOWER_FACE_RESIDUAL, look)]
    assert run(6.0, components), "the residual alone must read as movement"
    assert run(6.0, components, pose=lambda t: _shifted(25.0 * look(t))) == []


def test_mouth_that_opens_wavers_and_closes_once_is_not_speech():
    # An expression's mouth opens, eases back a little, opens again and
    # closes: four swings, each a syllable's half-cycle apart. Speech keeps
    # that rhythm up; a single expression does not reach a fifth swing.
    def wavering(t):
        pulses = [(3.0, 0.3), (3.25, -0.12), (3.45, 0.12), (3.7, -0.3)]
        return sum(v * np.exp(-0.5 * ((t - at) / 0.04) ** 2) for at, v in pulses)

    times, velocities = _speech_velocities(wavering, 6.0)
    spells, active = _spells(times, velocities)
    assert spells == [] and not active.any()


@pytest.mark.parametrize("fps", [25.0, 30.0, 60.0, 200.0])
def test_mouth_oscillation_reads_alike_at_any_frame_rate(fps):
    from microexpr.spotter import _oscillates

    times = np.arange(0.0, 1.5, 1.0 / fps)
    noise = 0.05 * np.random.default_rng(0).standard_normal((times.size, 1))
    for hz in (3.0, 4.5, 6.0):
        assert _oscillates(np.sin(2 * np.pi * hz * times)[:, None] + noise, times), hz
    single = np.exp(-0.5 * ((times - 0.7) / 0.15) ** 2)[:, None]
    assert not _oscillates(single + noise, times)


def test_heavy_tailed_noise_and_jolts_are_not_speech():
    # Compressed video gives the opening velocity heavy tails (median ~0.005,
    # 1 % of samples 10-40x that) and a blink jolts it once up and back:
    # 20 s of that must never read as syllables.
    rng = np.random.default_rng(7)
    times = np.arange(0.0, 20.0, 1.0 / 30.0)
    velocities = 0.007 * rng.standard_t(2, times.size)
    for jolt in (4.0, 9.5, 15.2):
        velocities += 0.25 * np.exp(-0.5 * ((times - jolt) / 0.03) ** 2)
        velocities -= 0.2 * np.exp(-0.5 * ((times - jolt - 0.1) / 0.03) ** 2)
    spells, active = _spells(times, velocities)
    assert spells == [] and not active.any()


CHEEK_RAISE = {"cheek_right": (0.0, -1.5), "cheek_left": (0.0, -1.5),
               "eye_lower_right": (0.0, -1.2), "eye_lower_left": (0.0, -1.2)}
TALKING = {"lower_lip": (0.0, 1.5), "chin": (0.0, 1.8),
           "mouth_corner_right": (0.0, 0.5), "mouth_corner_left": (0.0, 0.5)}


def speech_profile(start, stop, rate=4.5):
    """Syllables at ``rate`` Hz from ``start`` to ``stop``: the lips' displacement
    (0-1 of TALKING) and the mouth's opening velocity (IOD/s) as functions of t."""
    def talk(t):
        t = np.asarray(t, dtype=float)
        return np.where((t >= start) & (t < stop), 0.5 - 0.5 * np.cos(2 * np.pi * rate * (t - start)), 0.0)

    def opening(t):  # d/dt of the lower lip's displacement, IOD/s
        inside = start <= t < stop
        return 1.5 * np.pi * rate * np.sin(2 * np.pi * rate * (t - start)) / IOD if inside else 0.0

    return talk, opening


def test_micro_expression_just_before_speech_keeps_its_own_timing():
    # Speech is recognised only after a few syllables: the first ones must
    # not become the apex (and the end) of the micro-expression before them.
    talk, opening = speech_profile(3.3, 6.0)
    events = run(8.0, [(CHEEK_RAISE, lambda t: raised_cosine(t, 3.0, 3.1, 3.25)), (TALKING, talk)],
                 opening=opening)
    assert any(e.kind == "micro" and overlap(e, 3.0, 3.25) >= 0.5 for e in events), events


@pytest.mark.parametrize("fps", [25.0, 30.0, 60.0, 200.0])
def test_micro_expression_after_speech_is_not_anchored_mid_syllable(fps):
    # Speech stops with the mouth open and it snaps shut; a smile flashes
    # 0.3 s later. Anchored inside the spell, the closing and the smile
    # were one macro-length event at 60 fps.
    talk, opening = speech_profile(1.5, 4.05)

    events = run(8.0, [(TALKING, talk), (SMILE, lambda t: raised_cosine(t, 4.35, 4.6, 4.8))],
                 fps=fps, opening=opening)
    assert any(e.kind == "micro" and overlap(e, 4.35, 4.8) >= 0.5 for e in events), events


@pytest.mark.parametrize("fps", [25.0, 30.0, 60.0, 200.0])
def test_mouth_settling_after_speech_is_not_an_expression(fps):
    # Speech stops with the mouth open, and it closes over half a second:
    # one slow movement of the lips and chin, no longer a syllable rhythm.
    # That is the end of the speech, not an expression.
    start, stop, settled, rate = 2.6, 4.05, 4.55, 4.5

    def syllables(t):
        return 0.5 - 0.5 * np.cos(2 * np.pi * rate * (np.asarray(t, dtype=float) - start))

    def talk(t):
        t = np.asarray(t, dtype=float)
        closing = syllables(stop) * (0.5 + 0.5 * np.cos(np.pi * np.clip((t - stop) / (settled - stop), 0.0, 1.0)))
        return np.where(t < start, 0.0, np.where(t < stop, syllables(t), closing))

    def opening(t):  # d/dt of the lower lip's displacement, IOD/s
        step = 1e-4
        return float(talk(t + step) - talk(t - step)) / (2 * step) * 1.5 / IOD

    events = run(7.0, [(TALKING, talk)], fps=fps, opening=opening)
    assert events == [], events


LIP_STRETCH = {"mouth_corner_right": (-1.6, 0.3), "mouth_corner_left": (1.6, 0.3), "lower_lip": (0.0, 0.6)}


def test_mouth_expression_after_speech_in_a_candidate_anchored_mid_syllable_is_kept():
    # A blink at the end of a spell starts a candidate anchored mid-syllable:
    # against that anchor the closed mouth stays moved after the spell, so the
    # candidate's onset lies in speech and it was dropped whole as the mouth
    # settling, with the lip stretch that followed (held-out clip_016_25fps,
    # 3.3 s). Re-anchored once the mouth settled, the stretch is its own event.
    from microexpr.spotter import _Candidate

    spotter = TrackSpotter(0, IOD, lambda ref, cur: np.zeros((len(REGION_NAMES), 2)),
                           SpotterConfig.for_mode("offline"))
    spotter.speech.spells.append([1.5, 4.05])
    talk, _ = speech_profile(1.5, 4.05)
    crop = np.zeros((4, 4), np.uint8)
    anchor = FrameRecord(t=3.6, index=0, crop=crop, points=np.zeros((1, 2)))  # mouth wide open
    times = 3.6 + np.arange(1, 100) / 30.0
    records = [FrameRecord(t=float(t), index=i + 1, crop=crop, points=np.zeros((1, 2))) for i, t in enumerate(times)]
    vectors = [field(TALKING, talk(t) - talk(anchor.t)) + field(LIP_STRETCH, float(raised_cosine(t, 4.6, 5.2, 5.9)))
               for t in times]
    cand = _Candidate(anchor=anchor, trigger_t=4.2, times=list(times), vectors=vectors, records=records)
    cand.acts = [spotter._activity(v, t, spotter.speech.active_at(t), age=t - anchor.t)[1]
                 for v, t in zip(vectors, times)]
    event = spotter._finish(cand, len(times) - 1, float(times[-1]))
    assert event is not None and event.kind == "macro" and overlap(event, 4.6, 5.9) >= 0.5, event
    assert event.regions == ["mouth"]


@pytest.mark.parametrize("fps", [25.0, 30.0, 60.0, 200.0])
def test_expression_after_a_blink_in_its_candidate_does_not_name_the_eyes(fps):
    # A blink as speech ends starts a candidate; a lip stretch follows it.
    # The blink's frames before the onset are not the event's: its regions
    # are the mouth alone (they were the eyes alone at 30 fps).
    talk, opening = speech_profile(1.5, 4.05)

    def lids(t):
        return blink(t, 4.12, 4.37)

    events = run(9.0, [(TALKING, talk), (LIDS_CLOSING, lids),
                       (LIP_STRETCH, lambda t: 1.5 * raised_cosine(t, 4.5, 5.3, 6.1))],
                 fps=fps, opening=opening, aperture=lambda t: 0.3 * (1.0 - 0.8 * lids(t)))
    found = [e for e in events if overlap(e, 4.5, 6.1) >= 0.5]
    assert len(found) == 1 and found[0].regions == ["mouth"], events


@pytest.mark.parametrize("fps", [25.0, 60.0, 200.0])
def test_micro_expression_keeps_its_timing_beside_a_region_drifting_under_threshold(fps):
    # The chin drifts a little (under its threshold) just before and during a
    # brow flash: the activity, the largest region ratio, stays over the end
    # level on the drift alone, so onset and offset come from the brows' own
    # motion.
    drift = {"chin": (0.0, 0.35)}
    events = run(7.0, [(BROW_RAISE, lambda t: raised_cosine(t, 3.0, 3.08, 3.2)),
                       (drift, lambda t: ramp(t, 2.7, 2.95, 1.0) - ramp(t, 3.25, 3.5, 1.0))], fps=fps)
    assert len(events) == 1, events
    assert events[0].kind == "micro" and events[0].regions == ["brows"], events
    assert overlap(events[0], 3.0, 3.2) >= 0.7, events


@pytest.mark.parametrize("fps", [25.0, 60.0, 200.0])
def test_brief_residual_of_a_quick_head_turn_is_not_a_micro_expression(fps):
    # A quick turn, 12 px aside and back in 0.3 s: the landmarks lag it, and
    # the aligned crops are out by ~1.5 px for a micro-expression's length.
    turn = lambda t: np.sin(np.pi * np.clip((t - 3.0) / 0.3, 0.0, 1.0)) ** 2  # noqa: E731
    residual = {name: (0.0, 1.8) for name in ("brow_inner_right", "brow_inner_left", "upper_lip", "chin")}
    components = [(residual, turn)]
    alone = run(6.0, components, fps=fps)
    assert [e.kind for e in alone] == ["micro"], "the residual alone must read as a micro-expression"
    assert run(6.0, components, fps=fps, pose=lambda t: _shifted(12.0 * turn(t))) == []


@pytest.mark.parametrize("fps", [25.0, 60.0, 200.0])
def test_mouth_flash_running_into_a_blink_is_kept(fps):
    # The mouth moves 1.4 thresholds, under the margin a blink asks of the
    # regions it may jolt, but it peaks on frames clear of the blink.
    flash = {name: (0.26 * x, 0.26 * y) for name, (x, y) in MOUTH_CORNERS.items()}
    events = run(6.0, [(flash, lambda t: raised_cosine(t, 3.1, 3.22, 3.4)),
                       (LIDS_CLOSING, lambda t: blink(t, 3.3, 3.55))],
                 aperture=lambda t: 0.3 * (1.0 - 0.8 * blink(t, 3.3, 3.55)), fps=fps)
    assert len(events) == 1, events
    assert events[0].kind == "micro" and events[0].regions == ["mouth"], events
    assert overlap(events[0], 3.1, 3.4) >= 0.5, events


CHIN_DOWN = {"chin": (0.0, 1.0)}


@pytest.mark.parametrize("fps", [25.0, 60.0, 200.0])
def test_micro_expression_inside_a_dropped_drift_is_found(fps):
    # The chin sinks 1.2 px over 2 s, a shift that never comes back, and the
    # candidate it opens is dropped; a faint brow flash (1.2 thresholds)
    # inside it never leads the activity.
    events = run(8.0, [(BROW_RAISE, lambda t: 0.3 * raised_cosine(t, 3.5, 3.58, 3.7)),
                       (CHIN_DOWN, lambda t: ramp(t, 2.5, 4.5, 1.2))], fps=fps)
    assert len(events) == 1, events
    assert events[0].kind == "micro" and events[0].regions == ["brows"], events
    assert overlap(events[0], 3.5, 3.7) >= 0.5, events


@pytest.mark.parametrize("fps", [25.0, 200.0])
@pytest.mark.parametrize("seconds", [0.1, 2.0])
def test_shift_that_stays_holds_no_flash(fps, seconds):
    # A step (0.1 s) or a drift (2 s) of 2.4 px: far from the frames before
    # it and from those after, but not back where it started.
    assert run(8.0, [(CHIN_DOWN, lambda t: ramp(t, 3.0, 3.0 + seconds, 2.4))], fps=fps) == []


CHIN_RAISE = {"chin": (0.0, -1.8)}


@pytest.mark.parametrize("fps", [25.0, 200.0])
def test_chin_alone_jolting_after_a_blink_is_not_an_expression(fps):
    # A blink bends the landmark mesh and so the alignment: the chin, farthest
    # from the eyes, jolts for a moment after the lids are up (the Pexels
    # face's chin-only micro false positives). Away from a blink the same
    # movement is an expression.
    jolt = lambda t: raised_cosine(t, 3.35, 3.45, 3.6)
    lids = lambda t: blink(t, 3.0, 3.25)
    after_blink = run(6.0, [(LIDS_CLOSING, lids), (CHIN_RAISE, jolt)], fps=fps,
                      aperture=lambda t: 0.3 * (1.0 - 0.8 * lids(t)))
    assert after_blink == [], after_blink
    alone = run(6.0, [(CHIN_RAISE, jolt)], fps=fps)
    assert any(e.kind == "micro" and overlap(e, 3.35, 3.6) >= 0.5 for e in alone), alone


def test_idle_checks_do_not_chain_back_into_a_finished_speech_spell():
    # Summed back over a second, the idle checks would reach a frame
    # mid-syllable: against it the mouth's posture reads as a slow rise that
    # never comes back, and that candidate swallowed the brow flash after it
    # (held-out clip_005_30fps at 12.9 s). The idle check's own anchor
    # already stays out of a finished spell.
    spotter = TrackSpotter(0, IOD, lambda ref, cur: np.zeros((len(REGION_NAMES), 2)), SpotterConfig())
    crop = np.zeros((4, 4), np.uint8)
    records = [FrameRecord(t=0.1 * i, index=i, crop=crop, points=np.zeros((1, 2))) for i in range(60)]
    for i in range(3, 51):
        spotter._link(records[i], records[i - 3], np.zeros((len(REGION_NAMES), 2)))
    now = records[50]
    assert min(ref.t for ref, _ in spotter._chain(now, 1.0)) < 4.3
    spotter.speech.spells.append([3.0, 4.3])
    assert min(ref.t for ref, _ in spotter._chain(now, 1.0)) >= 4.3 + spotter.speech.hangover
