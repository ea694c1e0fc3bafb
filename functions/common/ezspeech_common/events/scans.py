"""Image scan results: ECR basic scanning and Amazon Inspector (enhanced scanning).

Shapes:
- "ECR Image Scan": https://docs.aws.amazon.com/AmazonECR/latest/userguide/ecr-eventbridge.html
- "Inspector2 Scan", "Inspector2 Finding":
  https://docs.aws.amazon.com/AmazonECR/latest/userguide/image-scanning-enhanced-events.html
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeAlias

from ezspeech_common.events.base import EventBridgeEnvelope, read_envelope
from ezspeech_common.events.reader import Fields


@dataclass(frozen=True)
class ImageScanDetail:
    scan_status: str = ""
    # ECR sends the name; Inspector2 Scan sends the repository ARN here.
    repository_name: str = ""
    image_digest: str = ""
    image_tags: tuple[str, ...] = ()
    finding_severity_counts: dict[str, int] = field(default_factory=dict)

    @classmethod
    def read(cls, fields: Fields) -> ImageScanDetail:
        return cls(
            scan_status=fields.text("scan-status", ""),
            repository_name=fields.text("repository-name", ""),
            image_digest=fields.text("image-digest", ""),
            image_tags=fields.texts("image-tags"),
            finding_severity_counts=fields.counts("finding-severity-counts"),
        )


@dataclass(frozen=True, kw_only=True)
class EcrImageScanEvent(EventBridgeEnvelope):
    detail: ImageScanDetail

    @classmethod
    def parse(cls, event: object) -> EcrImageScanEvent:
        fields = Fields(event)
        envelope = read_envelope(fields, "aws.ecr", "ECR Image Scan")
        return cls(**envelope, detail=ImageScanDetail.read(fields.object("detail")))


@dataclass(frozen=True, kw_only=True)
class InspectorScanEvent(EventBridgeEnvelope):
    detail: ImageScanDetail

    @classmethod
    def parse(cls, event: object) -> InspectorScanEvent:
        fields = Fields(event)
        envelope = read_envelope(fields, "aws.inspector2", "Inspector2 Scan")
        return cls(**envelope, detail=ImageScanDetail.read(fields.object("detail")))


@dataclass(frozen=True)
class EcrContainerImage:
    image_hash: str = ""
    image_tags: tuple[str, ...] = ()
    repository_name: str = ""
    registry: str = ""


@dataclass(frozen=True)
class InspectorResource:
    type: str
    id: str = ""
    # details.awsEcrContainerImage, the only resource detail we use (None for other resources).
    ecr_container_image: EcrContainerImage | None = None

    @classmethod
    def read(cls, fields: Fields) -> InspectorResource:
        details = fields.optional_object("details")
        image = details.optional_object("awsEcrContainerImage") if details else None
        return cls(
            type=fields.text("type"),
            id=fields.text("id", ""),
            ecr_container_image=None
            if image is None
            else EcrContainerImage(
                image_hash=image.text("imageHash", ""),
                image_tags=image.texts("imageTags"),
                repository_name=image.text("repositoryName", ""),
                registry=image.text("registry", ""),
            ),
        )


@dataclass(frozen=True)
class PackageVulnerabilityDetails:
    vulnerability_id: str = ""
    source_url: str = ""
    reference_urls: tuple[str, ...] = ()


@dataclass(frozen=True)
class InspectorFindingDetail:
    finding_arn: str
    severity: str
    status: str = ""
    title: str = ""
    type: str = ""
    # Inspector writes these as "Dec 3, 2021, 6:02:30 PM": kept as text, never parsed.
    last_observed_at: str = ""
    inspector_score: float | None = None
    package_vulnerability_details: PackageVulnerabilityDetails | None = None
    resources: tuple[InspectorResource, ...] = ()

    @classmethod
    def read(cls, fields: Fields) -> InspectorFindingDetail:
        package = fields.optional_object("packageVulnerabilityDetails")
        return cls(
            finding_arn=fields.text("findingArn"),
            severity=fields.text("severity"),
            status=fields.text("status", ""),
            title=fields.text("title", ""),
            type=fields.text("type", ""),
            last_observed_at=fields.text("lastObservedAt", ""),
            inspector_score=fields.optional_number("inspectorScore"),
            package_vulnerability_details=None
            if package is None
            else PackageVulnerabilityDetails(
                vulnerability_id=package.text("vulnerabilityId", ""),
                source_url=package.text("sourceUrl", ""),
                reference_urls=package.texts("referenceUrls"),
            ),
            resources=tuple(InspectorResource.read(r) for r in fields.objects("resources")),
        )

    @property
    def ecr_image(self) -> EcrContainerImage | None:
        for resource in self.resources:
            if resource.type == "AWS_ECR_CONTAINER_IMAGE" and resource.ecr_container_image:
                return resource.ecr_container_image
        return None


@dataclass(frozen=True, kw_only=True)
class InspectorFindingEvent(EventBridgeEnvelope):
    detail: InspectorFindingDetail

    @classmethod
    def parse(cls, event: object) -> InspectorFindingEvent:
        fields = Fields(event)
        envelope = read_envelope(fields, "aws.inspector2", "Inspector2 Finding")
        return cls(**envelope, detail=InspectorFindingDetail.read(fields.object("detail")))


ScanEvent: TypeAlias = EcrImageScanEvent | InspectorScanEvent | InspectorFindingEvent
_BY_DETAIL_TYPE: dict[str, Callable[[object], ScanEvent]] = {
    "ECR Image Scan": EcrImageScanEvent.parse,
    "Inspector2 Scan": InspectorScanEvent.parse,
    "Inspector2 Finding": InspectorFindingEvent.parse,
}


def parse_scan_event(event: object) -> ScanEvent:
    """Whichever scan event this is, chosen by its detail-type (then source and the rest checked)."""
    detail_type = Fields(event).choice("detail-type", tuple(_BY_DETAIL_TYPE))
    return _BY_DETAIL_TYPE[detail_type](event)
