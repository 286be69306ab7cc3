"""Simulated identities and the ways real extracts get them wrong.

Names are drawn with realistic frequency (Faker's en_GB lists, which are in popularity order,
weighted by a Zipf law; surnames from its frequency-weighted en_GB and en_US tables), postcodes
follow the UK format, and the noise functions reproduce what record linkage meets in practice:
typing errors, nicknames, day and month swapped, missing or stale postcodes; and, for the
hard profile, non-ASCII and double-barrelled names as systems mangle them, forename and surname
swapped, digit typos in dates of birth, padding and "not known" placeholders.
"""

from __future__ import annotations

import string

import numpy as np
import pandas as pd
from anyascii import anyascii
from faker.providers.person.en_GB import Provider as GBNames
from faker.providers.person.en_US import Provider as USNames

from srs.pipeline.names import read_nicknames

NICKNAMES = read_nicknames()
POSTCODE_AREAS = {
    "B": 8,
    "M": 7,
    "LS": 6,
    "L": 5,
    "S": 5,
    "NE": 4,
    "BS": 4,
    "NG": 4,
    "LE": 4,
    "CV": 3,
    "BD": 3,
    "SR": 2,
    "HU": 3,
    "PL": 2,
    "SO": 3,
    "PO": 3,
    "BN": 3,
    "CF": 3,
    "SA": 2,
    "G": 6,
    "EH": 4,
    "E": 6,
    "N": 5,
    "SE": 6,
    "SW": 6,
    "W": 4,
    "NW": 4,
    "CR": 3,
    "OL": 2,
    "BL": 2,
    "WA": 2,
    "ST": 3,
    "DE": 3,
    "WV": 3,
    "DY": 2,
    "TS": 3,
    "DN": 3,
    "YO": 2,
    "NR": 2,
    "IP": 2,
}
POSTCODE_UNIT_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"  # the letters the inward code uses


def _zipf(count: int, exponent: float = 0.9) -> np.ndarray:
    weights = 1.0 / np.arange(1, count + 1) ** exponent
    return weights / weights.sum()


def _surname_table() -> tuple[np.ndarray, np.ndarray]:
    weights: dict[str, float] = {}
    for table, share in ((GBNames.last_names, 0.6), (USNames.last_names, 0.4)):
        total = sum(table.values())
        for name, weight in table.items():
            weights[name] = weights.get(name, 0.0) + share * weight / total
    names = np.array(list(weights))
    probabilities = np.array(list(weights.values()))
    return names, probabilities / probabilities.sum()


SURNAMES, SURNAME_P = _surname_table()
MALE_FORENAMES = np.array(GBNames.first_names_male)
FEMALE_FORENAMES = np.array(GBNames.first_names_female)
MALE_P, FEMALE_P = _zipf(len(MALE_FORENAMES)), _zipf(len(FEMALE_FORENAMES))
AREAS = np.array(list(POSTCODE_AREAS))
AREA_P = np.array(list(POSTCODE_AREAS.values()), dtype=float) / sum(POSTCODE_AREAS.values())


def draw_forenames(rng: np.random.Generator, sex: np.ndarray) -> np.ndarray:
    """A forename for each person, by sex ('M' or 'F'), with realistic frequency."""
    names = np.empty(len(sex), dtype=object)
    male = sex == "M"
    names[male] = rng.choice(MALE_FORENAMES, male.sum(), p=MALE_P)
    names[~male] = rng.choice(FEMALE_FORENAMES, (~male).sum(), p=FEMALE_P)
    return names


def draw_surnames(rng: np.random.Generator, count: int) -> np.ndarray:
    """Surnames with realistic frequency."""
    return rng.choice(SURNAMES, count, p=SURNAME_P).astype(object)


def draw_postcodes(rng: np.random.Generator, count: int) -> np.ndarray:
    """UK-format postcodes (area, district, sector, unit), e.g. 'LS12 4TX'."""
    areas = rng.choice(AREAS, count, p=AREA_P)
    districts = rng.integers(1, 30, count)
    sectors = rng.integers(0, 10, count)
    letters = np.array(list(POSTCODE_UNIT_LETTERS))
    units = np.char.add(rng.choice(letters, count), rng.choice(letters, count))
    outward = np.char.add(areas.astype(str), districts.astype(str))
    inward = np.char.add(sectors.astype(str), units)
    return np.char.add(np.char.add(outward, " "), inward).astype(object)


def postcode_area(postcodes: pd.Series) -> pd.Series:
    """The postcode area (the leading letters), e.g. 'LS' for 'LS12 4TX'."""
    return postcodes.str.extract(r"^([A-Z]{1,2})", expand=False)


# ---------------------------------------------------------------- noise
def typo(rng: np.random.Generator, text: str) -> str:
    """One keying error: a letter deleted, inserted, substituted, or two letters transposed."""
    if len(text) < 3:
        return text
    position = int(rng.integers(1, len(text) - 1))
    kind = int(rng.integers(0, 4))
    letter = string.ascii_lowercase[int(rng.integers(0, 26))]
    if text[position].isupper():
        letter = letter.upper()
    if kind == 0:
        return text[:position] + text[position + 1 :]
    if kind == 1:
        return text[:position] + letter + text[position:]
    if kind == 2:
        return text[:position] + letter + text[position + 1 :]
    return text[: position - 1] + text[position] + text[position - 1] + text[position + 1 :]


def apply_typos(rng: np.random.Generator, values: np.ndarray, rate: float) -> np.ndarray:
    """Introduce one typing error into a share ``rate`` of the values."""
    out = values.copy()
    for index in np.flatnonzero(rng.random(len(values)) < rate):
        if isinstance(out[index], str):
            out[index] = typo(rng, out[index])
    return out


def apply_nicknames(rng: np.random.Generator, forenames: np.ndarray, rate: float) -> np.ndarray:
    """Replace a share ``rate`` of forenames that have a common nickname by one of them."""
    out = forenames.copy()
    for index in np.flatnonzero(rng.random(len(forenames)) < rate):
        options = NICKNAMES.get(out[index])
        if options:
            out[index] = options[int(rng.integers(0, len(options)))]
    return out


def swap_day_month(rng: np.random.Generator, dates: pd.Series, rate: float) -> pd.Series:
    """Swap day and month for a share ``rate`` of dates where the swap gives a valid date."""
    out = dates.copy()
    pick = (rng.random(len(dates)) < rate) & (dates.dt.day <= 12) & (dates.dt.day != dates.dt.month)
    if pick.any():
        chosen = dates[pick]
        out[pick] = pd.to_datetime(
            {"year": chosen.dt.year, "month": chosen.dt.day, "day": chosen.dt.month}
        )
    return out


def blank(rng: np.random.Generator, values: np.ndarray, rate: float) -> np.ndarray:
    """Set a share ``rate`` of the values to missing."""
    out = values.astype(object).copy()
    out[rng.random(len(values)) < rate] = None
    return out


# ---------------------------------------------------------------- the hard profile's noise
# Names a UK extract meets that Faker's en_GB lists lack: letters outside A-Z (Irish, Polish,
# Nordic, Turkish, Spanish, German, Czech, French spellings).
ACCENTED_MALE_FORENAMES = np.array(
    ["José", "Łukasz", "Jürgen", "Søren", "Björn", "François", "Seán", "Ciarán", "Zoltán",
     "André", "Tomáš", "Paweł", "Mikołaj", "Jiří", "Oğuz", "Çağrı", "Íñigo", "Jérôme"],
    dtype=object,
)  # fmt: skip
ACCENTED_FEMALE_FORENAMES = np.array(
    ["Zoë", "Chloë", "Renée", "Siobhán", "Małgorzata", "Inès", "Hélène", "Zsófia", "Łucja",
     "Kateřina", "Sinéad", "Bríd", "Élodie", "Anaïs", "Ayşe", "Müge", "Åsa", "Björk"],
    dtype=object,
)  # fmt: skip
ACCENTED_SURNAMES = np.array(
    ["Müller", "Wójcik", "Łukaszewicz", "Dvořák", "Šimić", "Özdemir", "Çelik", "García",
     "Martínez", "Núñez", "Ó Briain", "Søndergaard", "Jørgensen", "Fernández", "López",
     "Gonçalves", "Ní Bhriain", "Schäfer", "Krüger", "Öztürk", "Yılmaz", "Şahin", "Zieliński",
     "Nuñez-López", "Ó Súilleabháin", "Lefèvre", "Brontë", "Mäkinen"],
    dtype=object,
)  # fmt: skip
PLACEHOLDERS = {
    "forename": ("UNKNOWN", "N/K", "Not Known"),
    "surname": ("UNKNOWN", "NOT KNOWN", "N/A"),
    "postcode": ("NFA", "ZZ99 3VZ", "NO FIXED ABODE"),
    "pnc": ("0", "0000/0000000A"),
    "sex": ("U", "9"),
    "date_of_birth": (pd.Timestamp("1900-01-01"),),
}


def give_unusual_names(
    rng: np.random.Generator, people: pd.DataFrame, accented: float, double_barrelled: float
) -> pd.DataFrame:
    """Persons with non-ASCII forenames or surnames (a share ``accented`` of each) and
    double-barrelled surnames (a share ``double_barrelled``): their true names."""
    out = people.copy()
    count = len(out)
    male = out["sex"].to_numpy() == "M"
    forenames = out["forename"].to_numpy(dtype=object).copy()
    pick = rng.random(count) < accented
    forenames[pick & male] = rng.choice(ACCENTED_MALE_FORENAMES, (pick & male).sum())
    forenames[pick & ~male] = rng.choice(ACCENTED_FEMALE_FORENAMES, (pick & ~male).sum())
    surnames = out["surname"].to_numpy(dtype=object).copy()
    pick = rng.random(count) < accented
    surnames[pick] = rng.choice(ACCENTED_SURNAMES, pick.sum())
    pick = rng.random(count) < double_barrelled
    second = draw_surnames(rng, count)
    surnames[pick] = surnames[pick] + "-" + second[pick]
    out["forename"], out["surname"] = forenames, surnames
    return out


def record_names_as_systems_do(rng: np.random.Generator, names: np.ndarray) -> np.ndarray:
    """How a system keeps a name it cannot hold as given: accents dropped (José -> Jose,
    Łukasz -> Lukasz) in about half the records; a double-barrelled name with a space instead
    of the hyphen, or only one of its parts, in about half."""
    out = names.copy()
    draws = rng.random((len(out), 2))
    for index, name in enumerate(out):
        if not isinstance(name, str):
            continue
        if not name.isascii() and draws[index, 0] < 0.5:
            name = anyascii(name)
        if "-" in name and draws[index, 1] < 0.5:
            first, _, second = name.partition("-")
            name = (f"{first} {second}", first, first, second)[int(draws[index, 1] * 8)]
        out[index] = name
    return out


def swap_names(
    rng: np.random.Generator, forenames: np.ndarray, surnames: np.ndarray, rate: float
) -> tuple[np.ndarray, np.ndarray]:
    """Forename and surname keyed into each other's field, for a share ``rate`` of records."""
    pick = rng.random(len(forenames)) < rate
    return np.where(pick, surnames, forenames), np.where(pick, forenames, surnames)


def dob_digit_typo(rng: np.random.Generator, date: pd.Timestamp) -> pd.Timestamp:
    """One digit of a date of birth keyed wrongly (1985-03-14 -> 1983-03-14, 1985-08-14):
    a valid date within 30 years of the true one (the century digits are kept)."""
    digits = list(date.strftime("%Y%m%d"))
    for _ in range(20):
        position = int(rng.integers(2, 8))  # not the century
        changed = digits.copy()
        changed[position] = str(int(rng.integers(0, 10)))
        if changed == digits:
            continue
        candidate = pd.to_datetime("".join(changed), format="%Y%m%d", errors="coerce")
        if pd.notna(candidate) and abs((candidate - date).days) < 30 * 365:
            return candidate
    return date


def postcode_typo(rng: np.random.Generator, postcode: str) -> str:
    """One character of a postcode's inward code keyed wrongly (LS12 4TX -> LS12 4TY)."""
    if len(postcode) < 3:
        return postcode
    position = len(postcode) - int(rng.integers(1, 3))
    letter = POSTCODE_UNIT_LETTERS[int(rng.integers(0, len(POSTCODE_UNIT_LETTERS)))]
    return postcode[:position] + letter + postcode[position + 1 :]


def pad(rng: np.random.Generator, values: np.ndarray, rate: float) -> np.ndarray:
    """Leading or trailing spaces, or a changed letter case, on a share ``rate`` of values."""
    out = values.copy()
    for index in np.flatnonzero(rng.random(len(values)) < rate):
        value = out[index]
        if isinstance(value, str):
            kind = int(rng.integers(0, 4))
            out[index] = (f" {value}", f"{value}  ", value.lower(), f"  {value.upper()} ")[kind]
    return out


def placeholder(rng: np.random.Generator, values: np.ndarray, role: str, rate: float) -> np.ndarray:
    """A "not known" placeholder (UNKNOWN, NFA, 1900-01-01, ...) in a share ``rate`` of values."""
    out = values.astype(object).copy()
    pick = np.flatnonzero(rng.random(len(values)) < rate)
    options = PLACEHOLDERS[role]
    for index, choice in zip(pick, rng.integers(0, len(options), len(pick)), strict=True):
        out[index] = options[choice]
    return out
