import gc
import pytest
pytestmark = pytest.mark.integration

def test_zz_gc(postgres_server: str) -> None:
    """scratch"""
    print("PG", postgres_server)
    gc.collect()
