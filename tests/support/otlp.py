"""An OTLP/gRPC receiver for tests (opentelemetry-proto's collector services on grpcio): what a site's OpenTelemetry
Collector receives from the Dynamo processes, kept in memory as spans and log records with their resource."""
import threading
from concurrent import futures
from dataclasses import dataclass

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc


@dataclass(frozen=True)
class Received:
    """One span or log record: its resource attributes, name (a span's; a log record's body), and trace context."""
    resource: dict[str, str]
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str = ""
    attributes: tuple[tuple[str, str], ...] = ()  # the span's or record's own attributes


def _resource(resource) -> dict[str, str]:
    return _attributes(resource.attributes)


def _attributes(attributes) -> dict[str, str]:
    """String values as they are, others as their protobuf text (an int, a bool)."""
    return {a.key: a.value.string_value if a.value.HasField("string_value") else str(a.value).strip()
            for a in attributes}


class OtlpReceiver(trace_service_pb2_grpc.TraceServiceServicer, logs_service_pb2_grpc.LogsServiceServicer):
    def __init__(self, port: int):
        self.port, self.spans, self.logs = port, [], []
        self._lock = threading.Lock()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, self._server)
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(self, self._server)
        if not self._server.add_insecure_port(f"127.0.0.1:{port}"):
            raise OSError(f"the OTLP receiver could not listen on 127.0.0.1:{port}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def Export(self, request, context):  # noqa: N802 (the gRPC method name)
        if isinstance(request, trace_service_pb2.ExportTraceServiceRequest):
            received = [Received(_resource(rs.resource), s.name, s.trace_id.hex(), s.span_id.hex(),
                                 s.parent_span_id.hex(), tuple(_attributes(s.attributes).items()))
                        for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
            with self._lock:
                self.spans += received
            return trace_service_pb2.ExportTraceServiceResponse()
        received = [Received(_resource(rl.resource), r.body.string_value, r.trace_id.hex(), r.span_id.hex(),
                             attributes=tuple(_attributes(r.attributes).items()))
                    for rl in request.resource_logs for sl in rl.scope_logs for r in sl.log_records]
        with self._lock:
            self.logs += received
        return logs_service_pb2.ExportLogsServiceResponse()

    def __enter__(self) -> "OtlpReceiver":
        self._server.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.stop(grace=None)
