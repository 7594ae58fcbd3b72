"""librdkafka's mock cluster, driven through its C API with ctypes.

It runs inside this process, in the same librdkafka the Python client uses, and listens on
a real TCP port, so a dlqctl subprocess or an in-process producer reaches it like a broker.
Faults: take the broker down and up, make the next requests of one API fail with an error.
"""

from __future__ import annotations

import ctypes
import glob
from pathlib import Path
from types import TracebackType

import confluent_kafka

API_PRODUCE = 0
ERR_INVALID_RECORD = 87
ERR_NOT_ENOUGH_REPLICAS = 19

_vp, _cp = ctypes.c_void_p, ctypes.c_char_p


def _library() -> ctypes.CDLL:
    libs = Path(confluent_kafka.__file__).parent.parent / "confluent_kafka.libs"
    so = glob.glob(str(libs / "librdkafka*.so*"))[0]
    lib = ctypes.CDLL(so)
    lib.rd_kafka_conf_new.restype = _vp
    lib.rd_kafka_new.restype = _vp
    lib.rd_kafka_new.argtypes = [ctypes.c_int, _vp, _cp, ctypes.c_size_t]
    lib.rd_kafka_mock_cluster_new.restype = _vp
    lib.rd_kafka_mock_cluster_new.argtypes = [_vp, ctypes.c_int]
    lib.rd_kafka_mock_cluster_bootstraps.restype = _cp
    lib.rd_kafka_mock_cluster_bootstraps.argtypes = [_vp]
    lib.rd_kafka_mock_topic_create.argtypes = [_vp, _cp, ctypes.c_int, ctypes.c_int]
    lib.rd_kafka_mock_broker_set_down.argtypes = [_vp, ctypes.c_int32]
    lib.rd_kafka_mock_broker_set_up.argtypes = [_vp, ctypes.c_int32]
    lib.rd_kafka_mock_push_request_errors_array.argtypes = [
        _vp,
        ctypes.c_int16,
        ctypes.c_size_t,
        ctypes.POINTER(ctypes.c_int),
    ]
    lib.rd_kafka_mock_cluster_destroy.argtypes = [_vp]
    lib.rd_kafka_destroy.argtypes = [_vp]
    return lib


class MockCluster:
    """One mock broker (id 1) on 127.0.0.1."""

    def __init__(self) -> None:
        self._lib = _library()
        error = ctypes.create_string_buffer(512)
        self._holder = self._lib.rd_kafka_new(0, self._lib.rd_kafka_conf_new(), error, 512)
        if not self._holder:
            raise RuntimeError(f"rd_kafka_new failed: {error.value.decode()}")
        self._cluster = self._lib.rd_kafka_mock_cluster_new(self._holder, 1)
        self.bootstrap_servers = self._lib.rd_kafka_mock_cluster_bootstraps(self._cluster).decode()

    def create_topic(self, name: str, partitions: int = 1) -> str:
        self._lib.rd_kafka_mock_topic_create(self._cluster, name.encode(), partitions, 1)
        return name

    def broker_down(self) -> None:
        self._lib.rd_kafka_mock_broker_set_down(self._cluster, 1)

    def broker_up(self) -> None:
        self._lib.rd_kafka_mock_broker_set_up(self._cluster, 1)

    def fail_requests(self, api_key: int, errors: list[int]) -> None:
        """The next ``len(errors)`` requests of ``api_key`` fail with these error codes."""
        array = (ctypes.c_int * len(errors))(*errors)
        self._lib.rd_kafka_mock_push_request_errors_array(
            self._cluster, api_key, len(errors), array
        )

    def close(self) -> None:
        if self._cluster:
            self._lib.rd_kafka_mock_cluster_destroy(self._cluster)
            self._cluster = None
        if self._holder:
            self._lib.rd_kafka_destroy(self._holder)
            self._holder = None

    def __enter__(self) -> MockCluster:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
