"""Business calendars: ``Calendar.working_seconds`` and ``add_working_seconds``.

The contract (DESIGN.md, "SLA clock semantics"): working time is the set of instants
whose local wall-clock time, in the calendar's IANA timezone, falls inside one of the
working intervals of that local date's weekday, on a local date that is not a
holiday; ``24x7`` is every instant.  Every expected value below is worked out by hand
from that rule; the comment beside it shows the arithmetic.

Weekdays used throughout: 2026-11-02 is a Monday; 2026-03-29 and 2026-10-25 are the
Sundays on which Europe/Madrid changes to and from summer time (at 01:00Z);
2026-03-08 and 2026-11-01 are the Sundays on which America/New_York changes (02:00
local, 07:00Z and 06:00Z); Asia/Kolkata is UTC+05:30 all year.
"""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import holidays as holidays_package
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sla_sync.calendar import Calendar, NoWorkingTimeError
from tests.support import DAY, HOUR, MINUTE, calendar, every_day, iso, ts, weekdays

# -- the calendars under test ---------------------------------------------------------


def _calendars() -> dict[str, Calendar]:
    return {
        # Monday to Friday 09:00-17:00 UTC: 8 h a day.
        "office": calendar("UTC", weekdays("09:00-17:00")),
        # Monday to Friday 09:00-13:00 and 14:00-18:00 UTC: 8 h a day with a lunch break.
        "lunch": calendar("UTC", weekdays("09:00-13:00", "14:00-18:00")),
        # two intervals that touch at 13:00: one 9 h stretch
        "adjacent": calendar("UTC", weekdays("09:00-13:00", "13:00-18:00")),
        # The office calendar with Wednesday 2026-11-04 off.
        "office_hol": calendar("UTC", weekdays("09:00-17:00"), holidays=["2026-11-04"]),
        # Madrid office hours with Spanish and Madrid public holidays and two company days.
        "madrid_office": calendar(
            "Europe/Madrid",
            weekdays("09:00-17:00"),
            holidays=["2026-12-24", "2026-12-31"],
            country="ES",
            subdiv="MD",
        ),
        # The same without the Madrid subdivision (national holidays only).
        "spain_office": calendar("Europe/Madrid", weekdays("09:00-17:00"), country="ES"),
        # Madrid office hours, explicit holidays only.
        "madrid_plain": calendar("Europe/Madrid", weekdays("09:00-17:00"), holidays=["2026-12-25", "2027-01-01"]),
        "madrid_24x7_md": calendar("Europe/Madrid", "24x7", country="ES", subdiv="MD"),
        "madrid_24x7_es": calendar("Europe/Madrid", "24x7", country="ES"),
        "madrid_24x7_xmas": calendar("Europe/Madrid", "24x7", holidays=["2026-12-25"]),
        # Only Sundays, to look at the change days in isolation.
        "madrid_sun_full": calendar("Europe/Madrid", {"sun": ["00:00-24:00"]}),
        "madrid_sun_0200": calendar("Europe/Madrid", {"sun": ["02:00-03:00"]}),
        "madrid_sun_0130": calendar("Europe/Madrid", {"sun": ["01:30-02:30"]}),
        "ny_sun_full": calendar("America/New_York", {"sun": ["00:00-24:00"]}),
        "ny_sun_0200": calendar("America/New_York", {"sun": ["02:00-03:00"]}),
        "ny_sun_0100": calendar("America/New_York", {"sun": ["01:00-02:00"]}),
        "ny_sun_0130": calendar("America/New_York", {"sun": ["01:30-02:30"]}),
        "kolkata": calendar("Asia/Kolkata", weekdays("09:00-17:00")),
        "always": calendar("UTC", "24x7"),
        "always_xmas": calendar("UTC", "24x7", holidays=["2026-12-25"]),
        "oslo_24x7_no": calendar("Europe/Oslo", "24x7", country="NO"),
    }


CAL = _calendars()


# -- working_seconds, table-driven ------------------------------------------------------

WORKING_SECONDS = [
    # (id, calendar, start, end, expected seconds)
    # simple weekday hours
    ("whole_working_day", "office", "2026-11-02T09:00:00Z", "2026-11-02T17:00:00Z", 8 * HOUR),
    ("inside_hours", "office", "2026-11-02T10:00:00Z", "2026-11-02T11:30:00Z", 90 * MINUTE),
    # 08:00 is before opening: only 09:00-10:00 counts
    ("start_before_opening", "office", "2026-11-02T08:00:00Z", "2026-11-02T10:00:00Z", 1 * HOUR),
    # 16:00-17:00 Monday + 09:00-10:00 Tuesday
    ("across_a_night", "office", "2026-11-02T16:00:00Z", "2026-11-03T10:00:00Z", 2 * HOUR),
    ("evening_only", "office", "2026-11-02T18:00:00Z", "2026-11-02T23:00:00Z", 0),
    # Friday 16:00-17:00 + Monday 09:00-10:00
    ("across_a_weekend", "office", "2026-11-06T16:00:00Z", "2026-11-09T10:00:00Z", 2 * HOUR),
    ("weekend_only", "office", "2026-11-07T00:00:00Z", "2026-11-09T00:00:00Z", 0),
    # Monday to Friday, 5 x 8 h
    ("one_week", "office", "2026-11-02T00:00:00Z", "2026-11-09T00:00:00Z", 5 * 8 * HOUR),
    ("empty_range", "office", "2026-11-02T10:00:00Z", "2026-11-02T10:00:00Z", 0),
    ("end_before_start", "office", "2026-11-02T12:00:00Z", "2026-11-02T10:00:00Z", 0),
    # lunch break: 12:00-13:00 + 14:00-15:00
    ("across_lunch", "lunch", "2026-11-02T12:00:00Z", "2026-11-02T15:00:00Z", 2 * HOUR),
    ("lunch_only", "lunch", "2026-11-02T13:00:00Z", "2026-11-02T14:00:00Z", 0),
    ("whole_day_with_lunch", "lunch", "2026-11-02T00:00:00Z", "2026-11-03T00:00:00Z", 8 * HOUR),
    # touching intervals: 09:00-18:00 = 9 h
    ("adjacent_intervals", "adjacent", "2026-11-02T00:00:00Z", "2026-11-03T00:00:00Z", 9 * HOUR),
    # explicit holiday: Wednesday 2026-11-04 off, 4 x 8 h
    ("week_with_explicit_holiday", "office_hol", "2026-11-02T00:00:00Z", "2026-11-09T00:00:00Z", 4 * 8 * HOUR),
    ("explicit_holiday_itself", "office_hol", "2026-11-04T00:00:00Z", "2026-11-05T00:00:00Z", 0),
    # public holidays from the holidays package.  Local day 2026-05-02 (Madrid Day,
    # a Saturday) in CEST runs 2026-05-01T22:00Z .. 2026-05-02T22:00Z.
    ("madrid_day_is_a_holiday_in_MD", "madrid_24x7_md", "2026-05-01T22:00:00Z", "2026-05-02T22:00:00Z", 0),
    ("madrid_day_is_not_national", "madrid_24x7_es", "2026-05-01T22:00:00Z", "2026-05-02T22:00:00Z", DAY),
    # May 1 (Labour Day) and May 2 (Madrid Day) off, May 3 counts: 1 day
    ("three_days_two_holidays", "madrid_24x7_md", "2026-04-30T22:00:00Z", "2026-05-03T22:00:00Z", DAY),
    # Christmas: local day in CET is 2026-12-24T23:00Z .. 2026-12-25T23:00Z
    ("christmas", "madrid_24x7_md", "2026-12-24T23:00:00Z", "2026-12-25T23:00:00Z", 0),
    ("day_after_christmas", "madrid_24x7_md", "2026-12-25T23:00:00Z", "2026-12-26T23:00:00Z", DAY),
    # week of Mon 2026-11-02 in Madrid: Nov 2 is a Madrid holiday (All Saints' moved),
    # not a national one: 4 x 8 h with MD, 5 x 8 h without.
    ("week_with_MD_holiday", "madrid_office", "2026-11-01T23:00:00Z", "2026-11-08T23:00:00Z", 4 * 8 * HOUR),
    ("same_week_national_only", "spain_office", "2026-11-01T23:00:00Z", "2026-11-08T23:00:00Z", 5 * 8 * HOUR),
    # holidays are local dates: a 24x7 calendar in Madrid with Christmas off.  The UTC
    # day of Dec 25 ends with 23:00Z-24:00Z, which is already Dec 26 in Madrid.
    ("holiday_follows_local_date", "madrid_24x7_xmas", "2026-12-25T00:00:00Z", "2026-12-26T00:00:00Z", 1 * HOUR),
    # 2026-12-24T23:00Z-24:00Z is Dec 25 00:00-01:00 in Madrid: a holiday
    ("holiday_starts_at_local_midnight", "madrid_24x7_xmas", "2026-12-24T23:00:00Z", "2026-12-25T00:00:00Z", 0),
    # Norway: `NO` is a country code.  Constitution Day 2026-05-17 (CEST day
    # 2026-05-16T22:00Z .. 2026-05-17T22:00Z) is off; May 18 is a full day.
    ("norway_constitution_day", "oslo_24x7_no", "2026-05-16T22:00:00Z", "2026-05-17T22:00:00Z", 0),
    ("norway_next_day", "oslo_24x7_no", "2026-05-17T22:00:00Z", "2026-05-18T22:00:00Z", DAY),
    # DST in Europe/Madrid: the spring Sunday 2026-03-29 runs 2026-03-28T23:00Z (00:00
    # CET) .. 2026-03-29T22:00Z (24:00 CEST) = 23 h; the autumn Sunday 2026-10-25 runs
    # 2026-10-24T22:00Z (00:00 CEST) .. 2026-10-25T23:00Z (24:00 CET) = 25 h.  Ranges
    # from Saturday noon to Monday noon hold only that Sunday's interval.
    ("madrid_spring_day_is_23h", "madrid_sun_full", "2026-03-28T12:00:00Z", "2026-03-30T12:00:00Z", 23 * HOUR),
    ("madrid_autumn_day_is_25h", "madrid_sun_full", "2026-10-24T12:00:00Z", "2026-10-26T12:00:00Z", 25 * HOUR),
    ("madrid_normal_sunday_is_24h", "madrid_sun_full", "2026-03-21T12:00:00Z", "2026-03-23T12:00:00Z", 24 * HOUR),
    # 02:00-03:00 local does not exist on 2026-03-29 (02:00 CET jumps to 03:00 CEST)
    ("madrid_spring_gap_hour", "madrid_sun_0200", "2026-03-28T12:00:00Z", "2026-03-30T12:00:00Z", 0),
    # and happens twice on 2026-10-25: 00:00Z-01:00Z (CEST) + 01:00Z-02:00Z (CET)
    ("madrid_autumn_repeated_hour", "madrid_sun_0200", "2026-10-24T12:00:00Z", "2026-10-26T12:00:00Z", 2 * HOUR),
    # 01:30-02:30 on the spring day: only 01:30-02:00 CET exists = 30 min
    ("madrid_spring_gap_cuts_half", "madrid_sun_0130", "2026-03-28T12:00:00Z", "2026-03-30T12:00:00Z", 30 * MINUTE),
    # on the autumn day: 01:30-02:30 CEST (23:30Z-00:30Z) + 02:00-02:30 CET (01:00Z-01:30Z)
    (
        "madrid_autumn_overlap_repeats_half",
        "madrid_sun_0130",
        "2026-10-24T12:00:00Z",
        "2026-10-26T12:00:00Z",
        90 * MINUTE,
    ),
    # only part of the repeated hour: 00:30Z-01:00Z (02:30-03:00 CEST) + 01:00Z-01:30Z (02:00-02:30 CET)
    ("madrid_autumn_part_of_overlap", "madrid_sun_0200", "2026-10-25T00:30:00Z", "2026-10-25T01:30:00Z", 1 * HOUR),
    # DST in America/New_York: 2026-03-08 runs 05:00Z (00:00 EST) .. 2026-03-09T04:00Z
    # (24:00 EDT) = 23 h; 2026-11-01 runs 04:00Z (00:00 EDT) .. 2026-11-02T05:00Z = 25 h.
    ("ny_spring_day_is_23h", "ny_sun_full", "2026-03-07T12:00:00Z", "2026-03-09T12:00:00Z", 23 * HOUR),
    ("ny_autumn_day_is_25h", "ny_sun_full", "2026-10-31T12:00:00Z", "2026-11-02T12:00:00Z", 25 * HOUR),
    # 02:00-03:00 is skipped on 2026-03-08 ...
    ("ny_spring_gap_hour", "ny_sun_0200", "2026-03-07T12:00:00Z", "2026-03-09T12:00:00Z", 0),
    # ... and on 2026-11-01 happens once (the clock goes back at 02:00 EDT to 01:00 EST)
    ("ny_autumn_hour_after_overlap", "ny_sun_0200", "2026-10-31T12:00:00Z", "2026-11-02T12:00:00Z", 1 * HOUR),
    # 01:00-02:00 exists normally on 2026-03-08 ...
    ("ny_spring_hour_before_gap", "ny_sun_0100", "2026-03-07T12:00:00Z", "2026-03-09T12:00:00Z", 1 * HOUR),
    # ... and twice on 2026-11-01: 05:00Z-06:00Z (EDT) + 06:00Z-07:00Z (EST)
    ("ny_autumn_repeated_hour", "ny_sun_0100", "2026-10-31T12:00:00Z", "2026-11-02T12:00:00Z", 2 * HOUR),
    # 01:30-02:30: spring 01:30-02:00 EST only; autumn 05:30Z-06:00Z (EDT) + 06:30Z-07:30Z (EST)
    ("ny_spring_gap_cuts_half", "ny_sun_0130", "2026-03-07T12:00:00Z", "2026-03-09T12:00:00Z", 30 * MINUTE),
    ("ny_autumn_overlap_repeats_half", "ny_sun_0130", "2026-10-31T12:00:00Z", "2026-11-02T12:00:00Z", 90 * MINUTE),
    # Asia/Kolkata, UTC+05:30: Monday 2026-11-02 local runs 2026-11-01T18:30Z .. 2026-11-02T18:30Z
    ("kolkata_whole_local_day", "kolkata", "2026-11-01T18:30:00Z", "2026-11-02T18:30:00Z", 8 * HOUR),
    # 00:00Z-06:00Z is 05:30-11:30 IST: 09:00-11:30 counts
    ("kolkata_morning", "kolkata", "2026-11-02T00:00:00Z", "2026-11-02T06:00:00Z", 150 * MINUTE),
    # 11:00Z-12:00Z is 16:30-17:30 IST: 16:30-17:00 counts
    ("kolkata_closing", "kolkata", "2026-11-02T11:00:00Z", "2026-11-02T12:00:00Z", 30 * MINUTE),
    # 24x7
    ("always_is_wall_time", "always", "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z", 31 * DAY),
    ("always_partial_seconds", "always", "2026-01-01T00:00:00Z", "2026-01-01T00:00:07Z", 7),
    # Dec 24, 25, 26 UTC with Dec 25 off: 2 days
    ("always_with_holiday", "always_xmas", "2026-12-24T00:00:00Z", "2026-12-27T00:00:00Z", 2 * DAY),
    # spans of months.  February 2026 starts on a Sunday and has 28 days: 20 weekdays.
    ("february_2026", "office", "2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z", 20 * 8 * HOUR),
    # March 2026 in Madrid (2026-03-01T00:00 CET .. 2026-04-01T00:00 CEST), DST inside:
    # Mar 1 is a Sunday; weekdays 2-6, 9-13, 16-20, 23-27, 30-31 = 22; no holiday.
    ("march_2026_madrid_across_dst", "madrid_office", "2026-02-28T23:00:00Z", "2026-03-31T22:00:00Z", 22 * 8 * HOUR),
    # December 2026 in Madrid: Dec 1 is a Tuesday; weekdays 1-4, 7-11, 14-18, 21-25,
    # 28-31 = 23; minus Dec 7 (MD), Dec 8, Dec 25 (public) and Dec 24, Dec 31 (company) = 18.
    ("december_2026_madrid", "madrid_office", "2026-11-30T23:00:00Z", "2026-12-31T23:00:00Z", 18 * 8 * HOUR),
    # two years: 2026 starts on a Thursday and 2027 on a Friday, each has 365 days,
    # i.e. 52 weeks and one more weekday: 261 + 261 = 522 weekdays.
    ("two_years_utc", "office", "2026-01-01T00:00:00Z", "2028-01-01T00:00:00Z", 522 * 8 * HOUR),
    # the same in Madrid (2026-01-01T00:00 CET .. 2028-01-01T00:00 CET), minus two
    # weekday holidays (Fri 2026-12-25, Fri 2027-01-01): 520 days
    ("two_years_madrid", "madrid_plain", "2025-12-31T23:00:00Z", "2027-12-31T23:00:00Z", 520 * 8 * HOUR),
    # and with every ES/MD public holiday that falls on a weekday:
    # 2026: Jan 1, Jan 6, Apr 2, Apr 3, May 1, Oct 12, Nov 2, Dec 7, Dec 8, Dec 25 (10)
    # 2027: Jan 1, Jan 6, Mar 19, Mar 25, Mar 26, May 3, Oct 12, Nov 1, Dec 6, Dec 8 (10)
    # plus the company days Thu 2026-12-24 and Thu 2026-12-31: 522 - 22 = 500 days
    (
        "two_years_madrid_public_holidays",
        "madrid_office",
        "2025-12-31T23:00:00Z",
        "2027-12-31T23:00:00Z",
        500 * 8 * HOUR,
    ),
]


@pytest.mark.parametrize(
    ("cal", "start", "end", "expected"),
    [row[1:] for row in WORKING_SECONDS],
    ids=[row[0] for row in WORKING_SECONDS],
)
def test_working_seconds_counts_local_working_time(cal: str, start: str, end: str, expected: int) -> None:
    assert CAL[cal].working_seconds(ts(start), ts(end)) == expected


@pytest.mark.parametrize(
    ("cal", "start", "end", "expected"),
    [row[1:] for row in WORKING_SECONDS],
    ids=[row[0] for row in WORKING_SECONDS],
)
def test_working_seconds_is_the_same_on_a_fresh_calendar(cal: str, start: str, end: str, expected: int) -> None:
    # The shared calendars above have cached other spans already: a new one must agree.
    assert _calendars()[cal].working_seconds(ts(start), ts(end)) == expected


# -- add_working_seconds, table-driven ----------------------------------------------------

ADD_WORKING_SECONDS = [
    # (id, calendar, start, seconds, expected instant)
    ("zero_inside_hours", "office", "2026-11-02T10:00:00Z", 0, "2026-11-02T10:00:00Z"),
    # zero seconds have passed at the start itself, working time or not
    ("zero_outside_hours", "office", "2026-11-07T10:00:00Z", 0, "2026-11-07T10:00:00Z"),
    ("inside_hours", "office", "2026-11-02T10:00:00Z", 1 * HOUR, "2026-11-02T11:00:00Z"),
    # before opening: the hour runs 09:00-10:00
    ("start_before_opening", "office", "2026-11-02T08:00:00Z", 1 * HOUR, "2026-11-02T10:00:00Z"),
    # 16:00 + 1 h ends exactly at closing: 17:00, not Tuesday 09:00
    ("exactly_to_closing", "office", "2026-11-02T16:00:00Z", 1 * HOUR, "2026-11-02T17:00:00Z"),
    # one second more spills into Tuesday
    ("one_second_past_closing", "office", "2026-11-02T16:00:00Z", 1 * HOUR + 1, "2026-11-03T09:00:01Z"),
    # from closing time itself, the next working second is Tuesday's first
    ("start_at_closing", "office", "2026-11-02T17:00:00Z", 1, "2026-11-03T09:00:01Z"),
    # Friday 16:00-17:00 + Monday 09:00-10:00
    ("across_a_weekend", "office", "2026-11-06T16:00:00Z", 2 * HOUR, "2026-11-09T10:00:00Z"),
    ("start_on_a_saturday", "office", "2026-11-07T10:00:00Z", 1 * HOUR, "2026-11-09T10:00:00Z"),
    # lunch: 12:00 + 1 h ends at 13:00, not 14:00
    ("exactly_to_lunch", "lunch", "2026-11-02T12:00:00Z", 1 * HOUR, "2026-11-02T13:00:00Z"),
    ("one_second_past_lunch", "lunch", "2026-11-02T12:00:00Z", 1 * HOUR + 1, "2026-11-02T14:00:01Z"),
    # 12:30-13:00 + 14:00-14:30
    ("across_lunch", "lunch", "2026-11-02T12:30:00Z", 1 * HOUR, "2026-11-02T14:30:00Z"),
    # 12:00-14:00 straight through the touching point 13:00
    ("across_touching_intervals", "adjacent", "2026-11-02T12:00:00Z", 2 * HOUR, "2026-11-02T14:00:00Z"),
    # Tue 16:00-17:00, Wed 2026-11-04 off, Thu 09:00-10:00
    ("across_explicit_holiday", "office_hol", "2026-11-03T16:00:00Z", 2 * HOUR, "2026-11-05T10:00:00Z"),
    # Madrid: Fri 2026-10-30 16:00-17:00 CET (15:00Z-16:00Z), Mon Nov 2 off (MD),
    # Tue Nov 3 09:00-10:00 CET, which ends at 09:00Z
    ("across_MD_holiday", "madrid_office", "2026-10-30T15:00:00Z", 2 * HOUR, "2026-11-03T09:00:00Z"),
    # same without MD: Monday Nov 2 09:00-10:00 CET, ending at 09:00Z
    ("same_national_only", "spain_office", "2026-10-30T15:00:00Z", 2 * HOUR, "2026-11-02T09:00:00Z"),
    # Saturday before the spring change: Monday 2026-03-30 09:00-10:00 CEST = 08:00Z
    ("madrid_after_spring_change", "madrid_office", "2026-03-28T12:00:00Z", 1 * HOUR, "2026-03-30T08:00:00Z"),
    # Saturday before the autumn change: Monday 2026-10-26 09:00-10:00 CET = 09:00Z
    ("madrid_after_autumn_change", "madrid_office", "2026-10-24T12:00:00Z", 1 * HOUR, "2026-10-26T09:00:00Z"),
    # the repeated hour 02:00-03:00 on 2026-10-25: first pass 00:00Z-01:00Z, second 01:00Z-02:00Z
    ("madrid_first_pass_of_repeated_hour", "madrid_sun_0200", "2026-10-24T12:00:00Z", 1 * HOUR, "2026-10-25T01:00:00Z"),
    (
        "madrid_second_pass_of_repeated_hour",
        "madrid_sun_0200",
        "2026-10-24T12:00:00Z",
        2 * HOUR,
        "2026-10-25T02:00:00Z",
    ),
    # the skipped hour on 2026-03-29 gives nothing: next Sunday 2026-04-05 02:00 CEST = 00:00Z
    ("madrid_skipped_hour_gives_nothing", "madrid_sun_0200", "2026-03-28T12:00:00Z", 1, "2026-04-05T00:00:01Z"),
    # New York 01:00-02:00 on 2026-11-01: 05:00Z-06:00Z (EDT) then 06:00Z-07:00Z (EST)
    ("ny_into_repeated_hour", "ny_sun_0100", "2026-10-31T12:00:00Z", 90 * MINUTE, "2026-11-01T06:30:00Z"),
    # Kolkata: Monday 09:00-17:00 IST = 03:30Z-11:30Z
    ("kolkata_to_closing", "kolkata", "2026-11-02T00:00:00Z", 8 * HOUR, "2026-11-02T11:30:00Z"),
    # one second more: Tuesday 09:00:01 IST = 03:30:01Z
    ("kolkata_next_morning", "kolkata", "2026-11-02T00:00:00Z", 8 * HOUR + 1, "2026-11-03T03:30:01Z"),
    ("always_adds_wall_time", "always", "2026-01-01T00:00:00Z", 31 * DAY, "2026-02-01T00:00:00Z"),
    # 12 h of Dec 24, Dec 25 off, 12 h of Dec 26
    ("always_skips_holiday", "always_xmas", "2026-12-24T12:00:00Z", DAY, "2026-12-26T12:00:00Z"),
    # a month: the 18 working days of December 2026 in Madrid (see above) end with
    # Wed Dec 30 at 17:00 CET = 16:00Z (Dec 31 is a company holiday)
    ("december_2026_madrid", "madrid_office", "2026-11-30T23:00:00Z", 18 * 8 * HOUR, "2026-12-30T16:00:00Z"),
    # two years of weekdays (522 x 8 h) end on Friday 2027-12-31 at 17:00
    ("two_years_utc", "office", "2026-01-01T00:00:00Z", 522 * 8 * HOUR, "2027-12-31T17:00:00Z"),
]


@pytest.mark.parametrize(
    ("cal", "start", "seconds", "expected"),
    [row[1:] for row in ADD_WORKING_SECONDS],
    ids=[row[0] for row in ADD_WORKING_SECONDS],
)
def test_add_working_seconds_finds_the_earliest_instant(cal: str, start: str, seconds: int, expected: str) -> None:
    assert iso(CAL[cal].add_working_seconds(ts(start), seconds)) == expected


@pytest.mark.parametrize(
    ("cal", "start", "seconds", "expected"),
    [row[1:] for row in ADD_WORKING_SECONDS],
    ids=[row[0] for row in ADD_WORKING_SECONDS],
)
def test_add_working_seconds_is_the_same_on_a_fresh_calendar(cal: str, start: str, seconds: int, expected: str) -> None:
    assert iso(_calendars()[cal].add_working_seconds(ts(start), seconds)) == expected


def test_add_working_seconds_does_not_depend_on_earlier_long_queries() -> None:
    # A calendar is a pure function of its spec: a long report (12 years) asked of it
    # first must not change the answer to a later question.
    cal = calendar("UTC", weekdays("09:00-17:00"))
    cal.working_seconds(ts("2015-01-01T00:00:00Z"), ts("2027-01-01T00:00:00Z"))
    # Monday 2027-02-01 09:00 + 10 working days of 8 h: two full weeks, ending
    # Friday 2027-02-12 at 17:00
    assert iso(cal.add_working_seconds(ts("2027-02-01T09:00:00Z"), 10 * 8 * HOUR)) == "2027-02-12T17:00:00Z"


def test_working_seconds_of_a_long_span_queried_backwards() -> None:
    # Asking about a late span first and an early one afterwards grows the cache
    # backwards; both answers must be the plain count.
    cal = calendar("UTC", weekdays("09:00-17:00"))
    # week of Mon 2027-11-01: 5 x 8 h
    assert cal.working_seconds(ts("2027-11-01T00:00:00Z"), ts("2027-11-08T00:00:00Z")) == 5 * 8 * HOUR
    # February 2026: 20 weekdays
    assert cal.working_seconds(ts("2026-02-01T00:00:00Z"), ts("2026-03-01T00:00:00Z")) == 20 * 8 * HOUR
    # 2026 and 2027: 522 weekdays
    assert cal.working_seconds(ts("2026-01-01T00:00:00Z"), ts("2028-01-01T00:00:00Z")) == 522 * 8 * HOUR


def test_add_working_seconds_on_a_calendar_without_working_time_says_so() -> None:
    # No weekday has hours: no amount of waiting reaches one working second.
    with pytest.raises(NoWorkingTimeError):
        calendar("UTC", {}).add_working_seconds(ts("2026-11-02T09:00:00Z"), 1)


# -- properties ------------------------------------------------------------------------

# Calendars for the properties: several shapes, zones with and without DST, holidays.
PROPERTY_SPECS: dict[str, dict[str, object]] = {
    "office_utc": {"timezone": "UTC", "hours": weekdays("09:00-17:00")},
    "madrid_lunch_holidays": {
        "timezone": "Europe/Madrid",
        "hours": {**weekdays("09:00-13:00", "14:00-18:00"), "fri": ["09:00-15:00"]},
        "holidays": ["2026-12-24", "2026-12-31"],
        "country": "ES",
        "subdiv": "MD",
    },
    "madrid_nights": {"timezone": "Europe/Madrid", "hours": every_day("00:00-02:30", "23:00-24:00")},
    "madrid_sun_0130": {"timezone": "Europe/Madrid", "hours": {"sun": ["01:30-02:30"], "wed": ["02:00-03:00"]}},
    "new_york_us": {"timezone": "America/New_York", "hours": weekdays("08:00-20:00"), "country": "US"},
    "new_york_small_hours": {"timezone": "America/New_York", "hours": every_day("00:30-03:15")},
    "kolkata": {"timezone": "Asia/Kolkata", "hours": weekdays("09:00-17:00")},
    "madrid_24x7_md": {"timezone": "Europe/Madrid", "hours": "24x7", "country": "ES", "subdiv": "MD"},
    # changes at local midnight (Saturday 24:00 -> 23:00, Sunday 00:00 -> 01:00)
    "santiago_midnights": {"timezone": "America/Santiago", "hours": every_day("00:00-01:00", "23:00-24:00")},
    # a half-hour DST shift at 02:00
    "lord_howe_small_hours": {"timezone": "Australia/Lord_Howe", "hours": every_day("01:30-02:30")},
    "always": {"timezone": "UTC", "hours": "24x7"},
}


def _from_spec(spec: dict[str, object]) -> Calendar:
    return calendar(
        str(spec["timezone"]),
        spec["hours"],
        holidays=list(spec.get("holidays", ())),  # type: ignore[call-overload]
        country=spec.get("country"),  # type: ignore[arg-type]
        subdiv=spec.get("subdiv"),  # type: ignore[arg-type]
    )


PROP_CAL = {name: _from_spec(spec) for name, spec in PROPERTY_SPECS.items()}
PROP_NAMES = list(PROP_CAL)

T_MIN = ts("2025-01-01T00:00:00Z")
T_MAX = ts("2027-12-31T00:00:00Z")
# The UTC instants of the offset changes near which the properties look hardest.
_CHANGES = {
    "Europe/Madrid": ["2025-03-30T01:00:00Z", "2025-10-26T01:00:00Z", "2026-03-29T01:00:00Z",
                      "2026-10-25T01:00:00Z", "2027-03-28T01:00:00Z", "2027-10-31T01:00:00Z"],
    "America/New_York": ["2025-03-09T07:00:00Z", "2025-11-02T06:00:00Z", "2026-03-08T07:00:00Z",
                         "2026-11-01T06:00:00Z", "2027-03-14T07:00:00Z", "2027-11-07T06:00:00Z"],
    "America/Santiago": ["2026-04-05T03:00:00Z", "2026-09-06T04:00:00Z"],
    "Australia/Lord_Howe": ["2026-04-04T15:00:00Z", "2026-10-03T15:30:00Z"],
}  # fmt: skip
DST_CHANGES = [ts(t) for times in _CHANGES.values() for t in times]

# Any instant 2025-2027, or one within three days of a DST change.
instants = st.one_of(
    st.integers(T_MIN, T_MAX),
    st.sampled_from(DST_CHANGES).flatmap(lambda t: st.integers(t - 3 * DAY, t + 3 * DAY)),
)
# Spans of up to ~10 weeks, or short ones.
spans = st.one_of(st.integers(0, 70 * DAY), st.integers(0, 2 * DAY))
# Working seconds to add: up to 60 h, or a few seconds.
amounts = st.one_of(st.integers(0, 60 * HOUR), st.integers(0, 120))

PROPS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("name", PROP_NAMES)
@PROPS
@given(start=instants, first=spans, second=spans)
def test_working_time_is_additive_over_a_split_point(name: str, start: int, first: int, second: int) -> None:
    cal = PROP_CAL[name]
    mid, end = start + first, start + first + second
    assert cal.working_seconds(start, end) == cal.working_seconds(start, mid) + cal.working_seconds(mid, end)


@pytest.mark.parametrize("name", PROP_NAMES)
@PROPS
@given(start=instants, span=spans)
def test_adding_the_working_time_of_a_span_lands_on_the_earliest_instant(name: str, start: int, span: int) -> None:
    cal = PROP_CAL[name]
    end = start + span
    worked = cal.working_seconds(start, end)
    t = cal.add_working_seconds(start, worked)
    assert start <= t <= end
    assert cal.working_seconds(start, t) == worked
    if worked > 0:
        assert cal.working_seconds(start, t - 1) < worked


@pytest.mark.parametrize("name", PROP_NAMES)
@PROPS
@given(start=instants, seconds=amounts)
def test_working_time_up_to_the_added_instant_is_what_was_added(name: str, start: int, seconds: int) -> None:
    cal = PROP_CAL[name]
    t = cal.add_working_seconds(start, seconds)
    assert t >= start
    assert cal.working_seconds(start, t) == seconds
    if seconds > 0:
        assert cal.working_seconds(start, t - 1) == seconds - 1


@pytest.mark.parametrize("name", PROP_NAMES)
@PROPS
@given(start=instants, span=spans)
def test_working_time_never_exceeds_wall_time(name: str, start: int, span: int) -> None:
    assert 0 <= PROP_CAL[name].working_seconds(start, start + span) <= span


@pytest.mark.parametrize(
    "cal",
    [
        calendar("UTC", "24x7"),
        calendar("Europe/Madrid", "24x7"),
        # not the 24x7 shortcut: seven 00:00-24:00 days cover every instant, DST or not
        calendar("Europe/Madrid", every_day("00:00-24:00")),
        calendar("America/New_York", every_day("00:00-24:00")),
        calendar("Asia/Kolkata", every_day("00:00-12:00", "12:00-24:00")),
    ],
    ids=["utc_24x7", "madrid_24x7", "madrid_all_days", "new_york_all_days", "kolkata_all_days"],
)
@PROPS
@given(start=instants, span=spans, seconds=amounts)
def test_round_the_clock_without_holidays_is_wall_time(cal: Calendar, start: int, span: int, seconds: int) -> None:
    assert cal.working_seconds(start, start + span) == span
    assert cal.add_working_seconds(start, seconds) == start + seconds


def _by_definition(spec: dict[str, object], start: int, end: int) -> int:
    """Working seconds in [start, end) minute by minute, straight from the contract's
    wording (start, end and every interval bound fall on whole minutes, and so do the
    UTC offsets of the zones used, so each minute is all in or all out)."""
    tz = ZoneInfo(str(spec["timezone"]))
    hours = spec["hours"]
    explicit = {date.fromisoformat(d) for d in spec.get("holidays", ())}  # type: ignore[attr-defined]
    public = (
        holidays_package.country_holidays(str(spec["country"]), subdiv=spec.get("subdiv"))  # type: ignore[arg-type]
        if spec.get("country")
        else {}
    )
    days = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    total = 0
    for minute in range(start, end, MINUTE):
        local = datetime.fromtimestamp(minute, tz)
        if local.date() in explicit or local.date() in public:
            continue
        if hours == "24x7":
            total += MINUTE
            continue
        wall = local.hour * 60 + local.minute
        for text in hours.get(days[local.weekday()], ()):  # type: ignore[union-attr]
            a, b = text.split("-")
            lo = int(a[:2]) * 60 + int(a[3:])
            hi = int(b[:2]) * 60 + int(b[3:])
            if lo <= wall < hi:
                total += MINUTE
                break
    return total


@pytest.mark.parametrize("name", PROP_NAMES)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(start_min=instants.map(lambda t: t // MINUTE), length_min=st.integers(0, 3 * 24 * 60))
def test_working_seconds_matches_the_definition_minute_by_minute(name: str, start_min: int, length_min: int) -> None:
    start, end = start_min * MINUTE, (start_min + length_min) * MINUTE
    assert PROP_CAL[name].working_seconds(start, end) == _by_definition(PROPERTY_SPECS[name], start, end)


@pytest.mark.parametrize("name", PROP_NAMES)
@PROPS
@given(start=instants, span=spans)
def test_a_fresh_calendar_agrees_with_a_used_one(name: str, start: int, span: int) -> None:
    # The shared calendars have cached whatever earlier examples asked for.
    fresh = _from_spec(PROPERTY_SPECS[name])
    assert fresh.working_seconds(start, start + span) == PROP_CAL[name].working_seconds(start, start + span)
