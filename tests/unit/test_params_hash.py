"""``params_hash`` is stored with every job and compared when a key comes back: its canonical
form must stay byte for byte what ``json.dumps(sort_keys=True, separators=(",", ":"))`` gave
when those hashes were written."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from syncbridge.db.base import params_hash

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=12,
)


@given(job_type=st.text(), entity_id=st.text(), payload=json_values)
def test_hash_is_the_one_stored_hashes_were_made_with(
    job_type: str, entity_id: str, payload: Any
) -> None:
    canonical = json.dumps([job_type, entity_id, payload], sort_keys=True, separators=(",", ":"))
    assert (
        params_hash(job_type, entity_id, payload) == hashlib.sha256(canonical.encode()).hexdigest()
    )


def test_a_known_hash_does_not_move() -> None:
    assert (
        params_hash("noop", "ünï", {"b": 1, "a": [None]})
        == hashlib.sha256(b'["noop","\\u00fcn\\u00ef",{"a":[null],"b":1}]').hexdigest()
    )
