import math

import pytest

from d2m.control import Control, InvalidControl
from d2m.genres import GENRES, UnknownGenre, genre_index, parse_genre


def test_genres_accept_keys_codes_indices_and_aliases():
    assert len(GENRES) == 10
    assert parse_genre("house") == "house"
    assert parse_genre("gLH") == "la_hiphop"
    assert parse_genre("3") == "middle_hiphop"
    assert parse_genre("Waacking") == "waack"
    assert genre_index("ballet jazz") == 9
    with pytest.raises(UnknownGenre, match="use one of"):
        parse_genre("polka")


def test_control_validates_and_reports_only_what_changes():
    c = Control(genre="Krump", volume=0.5)
    assert c.genre == "krump"
    assert c.changes() == {"genre": "krump", "volume": 0.5}
    for bad in ({"volume": 2.0}, {"bpm": 20}, {"bpm": math.nan}, {"tempo_lock": "yes"},
                {"prompt": "x" * 501}, {"genre": "polka"}):
        with pytest.raises(InvalidControl):
            Control(**bad)


def test_control_from_dict_rejects_unknown_fields_by_name():
    with pytest.raises(InvalidControl, match="tempo"):
        Control.from_dict({"tempo": 120})
    assert Control.from_dict({"genre": "auto"}).genre == "auto"
