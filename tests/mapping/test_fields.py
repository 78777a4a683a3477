"""fields.toml at work: each transform, required fields, picklists, sync rules, and the live
checks against a Salesforce describe and HubSpot's property names."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from connector.mapping import FieldMap, load_fields, parse_fields
from tests.mapping.helpers import SHIPPED_FIELDS, fake_lead_describe

DESCRIBE = fake_lead_describe()


def one(entry: str, **kw: Any) -> FieldMap:
    """A map of one `[[fields]]` entry (plus the required stand-ins)."""
    return parse_fields(f"[[fields]]\n{entry}\n")


def value(fm: FieldMap, props: dict[str, Any], field: str, *, describe: bool = False,
          email: str = "ada@acme.com") -> Any:
    record = fm.lead_values(props, email=email, hubspot_id="101",
                            describe=DESCRIBE if describe else None)
    return record.values.get(field)


# --- transforms -----------------------------------------------------------------------------


def test_trim_is_on_by_default_and_can_be_turned_off() -> None:
    assert value(one('salesforce = "Title"\nhubspot = "jobtitle"'),
                 {"jobtitle": "  CTO  "}, "Title") == "CTO"
    assert value(one('salesforce = "Title"\nhubspot = "jobtitle"\ntrim = false'),
                 {"jobtitle": "  CTO  "}, "Title") == "  CTO  "


def test_trim_drops_control_characters_and_invisible_ends() -> None:
    fm = one('salesforce = "Company"\nhubspot = "company"')
    assert value(fm, {"company": "\u200b \tAcme\x07 Corp\x1b\x00 \ufeff"}, "Company") == \
        "Acme Corp"
    street = one('salesforce = "Description"\nhubspot = "message"')
    assert value(street, {"message": " line one\nline\ttwo\x0c "}, "Description") == \
        "line one\nline\ttwo"  # tabs and line breaks are text
    joined = one('salesforce = "Description"\nhubspot = ["city", "state"]\njoin = ", "')
    assert value(joined, {"city": "\x07 ", "state": " Ohio "}, "Description") == "Ohio"


@pytest.mark.parametrize(("case", "expected"), [("lower", "ada@acme.com"),
                                                ("upper", "ADA@ACME.COM"),
                                                ("title", "Ada@Acme.Com")])
def test_case(case: str, expected: str) -> None:
    fm = one(f'salesforce = "Email"\nhubspot = "email"\ncase = "{case}"')
    assert value(fm, {"email": "Ada@ACME.com"}, "Email") == expected


def test_truncate_to_a_number_and_to_the_described_length() -> None:
    fm = one('salesforce = "Title"\nhubspot = "jobtitle"\ntruncate = 5')
    record = fm.lead_values({"jobtitle": "Director of Data"}, email="a@b.com", hubspot_id="1")
    assert record.values["Title"] == "Direc"
    assert "truncated Title from 16 to 5 characters" in record.fixed
    long = "x" * 300
    fm = one('salesforce = "Title"\nhubspot = "jobtitle"')
    assert value(fm, {"jobtitle": long}, "Title") == long  # no describe: nothing to cut to
    assert value(fm, {"jobtitle": long}, "Title", describe=True) == "x" * 128
    fm = one('salesforce = "Title"\nhubspot = "jobtitle"\ntruncate = false')
    assert value(fm, {"jobtitle": long}, "Title", describe=True) == long


def test_email_and_url_fields_are_cut_only_when_asked() -> None:
    address = "a" * 90 + "@acme.com"
    fm = one('salesforce = "Email"\nhubspot = "email"')
    assert value(fm, {"email": address}, "Email", describe=True) == address
    fm = one('salesforce = "Email"\nhubspot = "email"\ntruncate = true')
    assert value(fm, {"email": address}, "Email", describe=True) == address[:80]


def test_map_with_case_insensitive_lookup_keep_and_drop() -> None:
    keep = one('salesforce = "LeadSource"\nhubspot = "hs_analytics_source"\n'
               'map = { ORGANIC_SEARCH = "Web", REFERRALS = "Partner Referral" }')
    assert value(keep, {"hs_analytics_source": "REFERRALS"}, "LeadSource") == "Partner Referral"
    assert value(keep, {"hs_analytics_source": "organic_search"}, "LeadSource") == "Web"
    assert value(keep, {"hs_analytics_source": "OFFLINE"}, "LeadSource") == "OFFLINE"
    drop = one('salesforce = "LeadSource"\nhubspot = "hs_analytics_source"\nunmapped = "drop"\n'
               'default = "Other"\nmap = { ORGANIC_SEARCH = "Web" }')
    record = drop.lead_values({"hs_analytics_source": "OFFLINE"}, email="a@b.com", hubspot_id="1")
    assert record.values["LeadSource"] == "Other"
    assert any("dropped LeadSource 'OFFLINE'" in f for f in record.fixed)


def test_default_fills_blanks_and_alone_is_a_constant() -> None:
    fm = one('salesforce = "Country"\nhubspot = "country"\ndefault = "Unknown"')
    assert value(fm, {"country": "  "}, "Country") == "Unknown"
    assert value(fm, {"country": "France"}, "Country") == "France"
    constant = one('salesforce = "Rating"\ndefault = "Warm"')
    assert value(constant, {}, "Rating") == "Warm"


def test_join_skips_blank_parts() -> None:
    fm = one('salesforce = "Description"\nhubspot = ["budget", "purchase_timeframe", "message"]\n'
             'join = " | "')
    props = {"budget": "$100k+", "purchase_timeframe": "", "message": " Call me "}
    assert value(fm, props, "Description") == "$100k+ | Call me"
    spaced = one('salesforce = "Description"\nhubspot = ["firstname", "lastname"]')
    assert value(spaced, {"firstname": "Ada", "lastname": "Lovelace"}, "Description") == \
        "Ada Lovelace"


def test_replace_and_matches() -> None:
    fm = one("salesforce = \"Phone\"\nhubspot = \"phone\"\nreplace = { pattern = '[^0-9+]', "
             "with = '' }")
    assert value(fm, {"phone": "+1 (415) 555-0100"}, "Phone") == "+14155550100"
    site = one("salesforce = \"Website\"\nhubspot = \"website\"\ncase = \"lower\"\n"
               "matches = '^https?://'")
    assert value(site, {"website": "HTTPS://Acme.com"}, "Website") == "https://acme.com"
    record = site.lead_values({"website": "n/a"}, email="a@b.com", hubspot_id="1")
    assert "Website" not in record.values
    assert any("does not match" in f for f in record.fixed)


def test_dates_from_epoch_ms_and_iso_to_salesforce_formats() -> None:
    ms = str(int(datetime(2026, 3, 4, 5, 6, 7, 890000, tzinfo=UTC).timestamp() * 1000))
    stamp = one('salesforce = "Last_Form_Date__c"\nhubspot = "recent_conversion_date"\n'
                'date = "epoch_ms"')
    assert value(stamp, {"recent_conversion_date": ms}, "Last_Form_Date__c") == \
        "2026-03-04T05:06:07.890Z"
    day = one('salesforce = "First_Seen__c"\nhubspot = "createdate"\ndate = "iso"')
    # The described type decides: a date field gets YYYY-MM-DD.
    assert value(day, {"createdate": "2026-03-04T23:30:00.000-02:00"}, "First_Seen__c",
                 describe=True) == "2026-03-05"
    assert value(day, {"createdate": "2026-03-04"}, "First_Seen__c") == \
        "2026-03-04T00:00:00.000Z"
    told = one('salesforce = "First_Seen__c"\nhubspot = "createdate"\ndate = "iso"\n'
               'date_as = "date"')
    assert value(told, {"createdate": "2026-03-04T10:00:00Z"}, "First_Seen__c") == "2026-03-04"
    record = stamp.lead_values({"recent_conversion_date": "yesterday"}, email="a@b.com",
                               hubspot_id="1")
    assert "Last_Form_Date__c" not in record.values
    assert any("not a epoch_ms date" in f for f in record.fixed)


def test_a_date_field_without_a_date_transform_takes_iso_and_epoch_ms_only() -> None:
    fm = parse_fields('[[fields]]\nsalesforce = "First_Seen__c"\nhubspot = "first_seen"\n'
                      '[[fields]]\nsalesforce = "Last_Form_Date__c"\nhubspot = "last_form"\n')
    ms = str(int(datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC).timestamp() * 1000))
    record = fm.lead_values({"first_seen": "2026-03-04T23:30:00-02:00", "last_form": ms},
                            email="a@b.com", hubspot_id="1", describe=DESCRIBE)
    assert record.values["First_Seen__c"] == "2026-03-04"  # the day as written
    assert record.values["Last_Form_Date__c"] == "2026-03-04T05:06:07.000Z"
    bad = fm.lead_values({"first_seen": "3rd of March", "last_form": "soon"},
                         email="a@b.com", hubspot_id="1", describe=DESCRIBE)
    assert "First_Seen__c" not in bad.values and "Last_Form_Date__c" not in bad.values
    assert any(f.startswith("dropped First_Seen__c '3rd of March': not a date") for f in bad.fixed)


def test_numbers_and_booleans_follow_the_described_type() -> None:
    fm = parse_fields('[[fields]]\nsalesforce = "AnnualRevenue"\nhubspot = "annualrevenue"\n'
                      '[[fields]]\nsalesforce = "NumberOfEmployees"\nhubspot = "numemployees"\n'
                      '[[fields]]\nsalesforce = "HasOptedOutOfEmail"\nhubspot = "hs_opt_out"\n')
    record = fm.lead_values({"annualrevenue": "1,250,000.50", "numemployees": "about 40",
                             "hs_opt_out": "Yes"}, email="a@b.com", hubspot_id="1",
                            describe=DESCRIBE)
    assert record.values["AnnualRevenue"] == 1250000.5
    assert record.values["HasOptedOutOfEmail"] is True
    assert "NumberOfEmployees" not in record.values
    assert any("NumberOfEmployees 'about 40': not a number" in f for f in record.fixed)


# --- required fields, picklists, the shipped map --------------------------------------------


def test_required_fields_always_get_a_value() -> None:
    fm = load_fields(SHIPPED_FIELDS)
    corporate = fm.lead_values({"lastname": " ", "company": None}, email="jane.doe@acme.io",
                               hubspot_id="7", describe=DESCRIBE)
    assert corporate.values["LastName"] == "jane.doe"
    assert corporate.values["Company"] == "acme.io"
    assert corporate.placeholders == {"LastName", "Company"}
    assert any(f.startswith("defaulted Company to 'acme.io'") for f in corporate.fixed)
    free = fm.lead_values({}, email="jane@gmail.com", hubspot_id="8")
    assert free.values["Company"] == "[not provided]"
    nothing = fm.lead_values({}, email="", hubspot_id="9")
    assert nothing.values["LastName"] == "[not provided]"
    assert nothing.values["Company"] == "[not provided]"
    given = fm.lead_values({"lastname": "Doe", "company": "Acme"}, email="j@acme.io",
                           hubspot_id="7")
    assert (given.values["LastName"], given.values["Company"]) == ("Doe", "Acme")
    assert not given.placeholders


def test_shipped_map_on_a_sandbox_like_contact() -> None:
    fm = load_fields(SHIPPED_FIELDS)
    props = {"firstname": "Ada", "lastname": "Lovelace", "email": "Ada@Acme.com",
             "jobtitle": "VP  of Engineering", "company": "Acme Systems",
             "website": "https://www.acme.com", "phone": "+1 415 555 0100",
             "numemployees": "100-500", "industry": "Computer Software",
             "country": "United States", "state": "California",
             "hs_analytics_source": "REFERRALS"}
    record = fm.lead_values(props, email="ada@acme.com", hubspot_id="101", describe=DESCRIBE)
    assert record.values == {
        "FirstName": "Ada", "LastName": "Lovelace", "Email": "ada@acme.com",
        "Title": "VP of Engineering", "Phone": "+1 415 555 0100", "Company": "Acme Systems",
        "Website": "https://www.acme.com", "Industry": "Technology", "NumberOfEmployees": 100,
        "Country": "United States", "State": "California", "LeadSource": "Partner Referral",
    }
    assert record.fixed == []
    assert record.rules["LeadSource"] == "salesforce"
    other = fm.lead_values({**props, "industry": "Real Estate", "hs_analytics_source": "NEW_THING"},
                           email="ada@acme.com", hubspot_id="101", describe=DESCRIBE)
    assert other.values["Industry"] == "Other"
    assert other.values["LeadSource"] == "Other"


def test_restricted_picklist_values_are_defaulted_or_dropped() -> None:
    with_default = one('salesforce = "Rating"\nhubspot = "rating"\ndefault = "Cold"')
    record = with_default.lead_values({"rating": "Lukewarm"}, email="a@b.com", hubspot_id="1",
                                      describe=DESCRIBE)
    assert record.values["Rating"] == "Cold"
    assert any("not a value of the restricted picklist; used the default" in f
               for f in record.fixed)
    bare = one('salesforce = "Rating"\nhubspot = "rating"')
    record = bare.lead_values({"rating": "Lukewarm"}, email="a@b.com", hubspot_id="1",
                              describe=DESCRIBE)
    assert "Rating" not in record.values
    assert any("dropped Rating 'Lukewarm'" in f for f in record.fixed)
    # A value differing only in case is written as the picklist spells it.
    assert value(bare, {"rating": "hot"}, "Rating", describe=True) == "Hot"
    # Unrestricted picklists accept other values, as Salesforce does.
    src = one('salesforce = "LeadSource"\nhubspot = "hs_analytics_source"')
    assert value(src, {"hs_analytics_source": "Trade Show"}, "LeadSource", describe=True) == \
        "Trade Show"
    multi = one('salesforce = "Interests__c"\nhubspot = "interests"')
    assert value(multi, {"interests": "crm;Forecasting;Routing"}, "Interests__c",
                 describe=True) == "CRM;Routing"


# --- sync rules -----------------------------------------------------------------------------


SYNCED = parse_fields(
    '[[fields]]\nsalesforce = "Title"\nhubspot = "jobtitle"\nsync = "hubspot"\n'
    '[[fields]]\nsalesforce = "LeadSource"\nhubspot = "src"\nsync = "salesforce"\n'
    '[[fields]]\nsalesforce = "Phone"\nhubspot = "phone"\nsync = "salesforce_unless_blank"\n'
    '[[fields]]\nsalesforce = "City"\nhubspot = "city"\nsync = "two_way"\n'
    '[[fields]]\nsalesforce = "Country"\nhubspot = "country"\nsync = "none"\n'
    '[[fields]]\nsalesforce = "LastName"\nhubspot = "lastname"\n'
)
PROPS = {"jobtitle": "CTO", "src": "Web", "phone": "+1 555", "city": "Paris",
         "country": "France", "lastname": ""}


def test_a_new_record_gets_every_synced_field() -> None:
    record = SYNCED.lead_values(PROPS, email="a@acme.com", hubspot_id="1")
    assert "Country" not in record.values
    assert record.rules["Country"] == "none"
    assert record.changes(None) == {"Title": "CTO", "LeadSource": "Web", "Phone": "+1 555",
                                    "City": "Paris", "LastName": "a", "Company": "acme.com",
                                    "Email": "a@acme.com"}


def test_sync_rules_decide_what_an_update_writes() -> None:
    record = SYNCED.lead_values(PROPS, email="a@acme.com", hubspot_id="1")
    current = {"Title": "CEO", "LeadSource": "Partner Referral", "Phone": "+44 1",
               "City": "Lyon", "Country": "Spain", "LastName": "Smith", "Company": "Acme",
               "Email": "a@acme.com"}
    older = datetime(2026, 1, 1, tzinfo=UTC)
    newer = datetime(2026, 2, 1, tzinfo=UTC)
    # HubSpot changed last: two_way takes HubSpot's City; stand-ins never replace values.
    assert record.changes(current, hubspot_modified=newer, salesforce_modified=older) == \
        {"Title": "CTO", "City": "Paris"}
    # Salesforce changed last: two_way keeps Salesforce's City.
    assert record.changes(current, hubspot_modified=older, salesforce_modified=newer) == \
        {"Title": "CTO"}
    # A blank Salesforce field is filled whatever the rule (but `none` and `salesforce`).
    blank = {**current, "Phone": None, "City": "", "Title": "CTO"}
    assert record.changes(blank, hubspot_modified=older, salesforce_modified=newer) == \
        {"Phone": "+1 555", "City": "Paris"}


def test_equal_values_are_no_change() -> None:
    fm = parse_fields('[[fields]]\nsalesforce = "Last_Form_Date__c"\nhubspot = "d"\n'
                      'date = "iso"\n[[fields]]\nsalesforce = "NumberOfEmployees"\n'
                      'hubspot = "n"\n')
    record = fm.lead_values({"d": "2026-03-04T05:06:07Z", "n": "40"}, email="a@acme.com",
                            hubspot_id="1", describe=DESCRIBE)
    current = {"Last_Form_Date__c": "2026-03-04T05:06:07.000+0000", "NumberOfEmployees": 40.0,
               "LastName": "a", "Company": "acme.com", "Email": "a@acme.com"}
    assert record.changes(current) == {}


# --- live checks ----------------------------------------------------------------------------

BAD_MAP = """\
sobject = "Lead"

[[fields]]
salesforce = "Titel"
hubspot = "jobtitle"

[[fields]]
salesforce = "Name"
hubspot = "fullname"

[[fields]]
salesforce = "IsConverted"
hubspot = "converted"
sync = "salesforce"
map = { "yes" = true, "done" = "Converted" }

[[fields]]
salesforce = "Last_Form_Date__c"
hubspot = "recent_conversion_date"

[[fields]]
salesforce = "NumberOfEmployees"
hubspot = "numemployees"
map = { "1-5" = "tiny", "1000+" = 1000 }

[[fields]]
salesforce = "Industry"
hubspot = "industry"
map = { "Computer Software" = "Software", "Banking" = "Banking" }

[[fields]]
salesforce = "Rating"
hubspot = "rating"
default = "Lukewarm"

[[fields]]
salesforce = "PostalCode"
hubspot = "zip"
truncate = 40

[[fields]]
salesforce = "City"
hubspot = "ciudad"
"""


def test_live_problems_against_a_describe_and_hubspot_properties() -> None:
    fm = parse_fields(BAD_MAP, "fields.toml")
    describe = {**DESCRIBE, "Region__c": {**DESCRIBE["Company"], "name": "Region__c"}}
    known = {"jobtitle", "fullname", "converted", "recent_conversion_date", "numemployees",
             "industry", "rating", "zip", "city"}
    problems = fm.live_problems(describe, known, "fields.toml")
    by_key: dict[str, list[str]] = {}
    for p in problems:
        by_key.setdefault(p.key, []).append(p.problem)
        assert p.file == "fields.toml" and p.fix
    text_lines = BAD_MAP.splitlines()
    line_of = {p.key: p.line for p in problems}
    assert "Lead has no field 'Titel'" in by_key["fields[0].salesforce"]
    assert "did you mean 'Title'" in next(p.fix for p in problems if p.key ==
                                           "fields[0].salesforce")
    assert any("not createable" in m for m in by_key["fields[1].salesforce"])
    assert by_key["fields[2].map"] == ["IsConverted is a checkbox but the map gives other values"]
    assert any("not read as a date" in m for m in by_key["fields[3].date"])
    assert any("number field but the map gives text" in m for m in by_key["fields[4].map"])
    assert any("'Software' is not a value of the Industry picklist" in m
               for m in by_key["fields[5].map"])
    assert any("restricted" in m for m in by_key["fields[6].default"])
    assert any("truncate = 40 is longer than PostalCode's 20" in m
               for m in by_key["fields[7].truncate"])
    assert by_key["fields[8].hubspot"] == ["HubSpot has no contact property 'ciudad'"]
    assert any("Region__c is required" in m for m in by_key["required"])
    assert text_lines[line_of["fields[0].salesforce"] - 1] == 'salesforce = "Titel"'  # type: ignore[operator]
    assert text_lines[line_of["fields[8].hubspot"] - 1] == 'hubspot = "ciudad"'  # type: ignore[operator]
    assert text_lines[line_of["fields[7].truncate"] - 1] == "truncate = 40"  # type: ignore[operator]


def test_read_only_field_needs_a_create_only_rule() -> None:
    describe = {**DESCRIBE, "Score__c": {**DESCRIBE["Title"], "name": "Score__c",
                                         "updateable": False}}
    fm = one('salesforce = "Score__c"\nhubspot = "score"')
    problems = fm.live_problems(describe, {"score"}, "fields.toml")
    assert [p.key for p in problems] == ["fields[0].sync"]
    ok = one('salesforce = "Score__c"\nhubspot = "score"\nsync = "salesforce"')
    assert ok.live_problems(describe, {"score"}, "fields.toml") == []


def test_shipped_map_fits_the_sandbox_org_and_portal() -> None:
    from connector.sandbox.hubspot.catalog import default_contact_properties
    from connector.sandbox.salesforce.schema import OBJECTS, describe_object

    lead = describe_object(OBJECTS["Lead"], "v62.0", {})
    sf_fields = {f["name"]: f for f in lead["fields"]}
    hubspot = set(default_contact_properties("2026-01-01T00:00:00.000Z"))
    fm = load_fields(SHIPPED_FIELDS)
    assert fm.live_problems(sf_fields, hubspot, str(SHIPPED_FIELDS)) == []
    # Every source HubSpot knows becomes a Lead Source Salesforce lists.
    sources = {f["value"] for f in sf_fields["LeadSource"]["picklistValues"]}
    for option in ("ORGANIC_SEARCH", "PAID_SEARCH", "EMAIL_MARKETING", "SOCIAL_MEDIA",
                   "REFERRALS", "OTHER_CAMPAIGNS", "DIRECT_TRAFFIC", "OFFLINE", "PAID_SOCIAL"):
        mapped = fm.lead_values({"hs_analytics_source": option}, email="a@acme.com",
                                hubspot_id="1", describe=sf_fields)
        assert mapped.values["LeadSource"] in sources


def test_the_lead_carries_the_contacts_email_unless_told_not_to() -> None:
    unmapped = one('salesforce = "Title"\nhubspot = "jobtitle"')
    assert value(unmapped, {}, "Email", email="ada@acme.com") == "ada@acme.com"
    blank = one('salesforce = "Email"\nhubspot = "work_email"')
    assert value(blank, {"work_email": ""}, "Email", email="ada@acme.com") == "ada@acme.com"
    assert value(blank, {"work_email": "a@work.com"}, "Email") == "a@work.com"
    off = one('salesforce = "Email"\nhubspot = "email"\nsync = "none"')
    assert value(off, {}, "Email", email="ada@acme.com") is None


def test_a_required_field_set_to_none_still_gets_its_stand_in_on_create() -> None:
    fm = parse_fields('[[fields]]\nsalesforce = "Company"\nhubspot = "company"\nsync = "none"\n')
    record = fm.lead_values({"company": "Acme"}, email="ada@acme.com", hubspot_id="1")
    assert record.changes(None)["Company"] == "acme.com"
    assert "Company" not in record.changes({"Company": "Acme Inc", "LastName": "x",
                                            "Email": "ada@acme.com"})
