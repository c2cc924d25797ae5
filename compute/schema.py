"""OpenAPI description of compute's own field types (loaded in ComputeConfig.ready)."""

from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.plumbing import build_basic_type
from drf_spectacular.types import OpenApiTypes


class ManagedUrlFieldExtension(OpenApiSerializerFieldExtension):
    """A URL clients send, and read back only when they manage the backend."""

    target_class = "compute.serializers.ManagedUrlField"

    def map_serializer_field(self, auto_schema, direction):
        schema = build_basic_type(OpenApiTypes.URI)
        schema["maxLength"] = self.target.max_length
        if direction == "response":
            schema["nullable"] = True
        return schema
