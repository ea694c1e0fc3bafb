"""Image scan results: ECR basic scanning and Amazon Inspector (enhanced scanning).

Shapes:
- "ECR Image Scan": https://docs.aws.amazon.com/AmazonECR/latest/userguide/ecr-eventbridge.html
- "Inspector2 Scan", "Inspector2 Finding":
  https://docs.aws.amazon.com/AmazonECR/latest/userguide/image-scanning-enhanced-events.html
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from ezspeech_common.events.base import EventBridgeEnvelope, EventModel


class ImageScanDetail(EventModel):
    scan_status: str = Field(default="", alias="scan-status")
    # ECR sends the name; Inspector2 Scan sends the repository ARN here.
    repository_name: str = Field(default="", alias="repository-name")
    image_digest: str = Field(default="", alias="image-digest")
    image_tags: list[str] = Field(default_factory=list, alias="image-tags")
    finding_severity_counts: dict[str, int] = Field(default_factory=dict, alias="finding-severity-counts")


class EcrImageScanEvent(EventBridgeEnvelope):
    source: Literal["aws.ecr"]
    detail_type: Literal["ECR Image Scan"] = Field(alias="detail-type")
    detail: ImageScanDetail


class InspectorScanEvent(EventBridgeEnvelope):
    source: Literal["aws.inspector2"]
    detail_type: Literal["Inspector2 Scan"] = Field(alias="detail-type")
    detail: ImageScanDetail


class EcrContainerImage(EventModel):
    image_hash: str = Field(default="", alias="imageHash")
    image_tags: list[str] = Field(default_factory=list, alias="imageTags")
    repository_name: str = Field(default="", alias="repositoryName")
    registry: str = ""


class InspectorResourceDetails(EventModel):
    aws_ecr_container_image: EcrContainerImage | None = Field(default=None, alias="awsEcrContainerImage")


class InspectorResource(EventModel):
    type: str
    id: str = ""
    details: InspectorResourceDetails = Field(default_factory=InspectorResourceDetails)


class PackageVulnerabilityDetails(EventModel):
    vulnerability_id: str = Field(default="", alias="vulnerabilityId")
    source_url: str = Field(default="", alias="sourceUrl")
    reference_urls: list[str] = Field(default_factory=list, alias="referenceUrls")


class InspectorFindingDetail(EventModel):
    finding_arn: str = Field(alias="findingArn")
    severity: str
    status: str = ""
    title: str = ""
    type: str = ""
    # Inspector writes these as "Dec 3, 2021, 6:02:30 PM": kept as text, never parsed.
    last_observed_at: str = Field(default="", alias="lastObservedAt")
    inspector_score: float | None = Field(default=None, alias="inspectorScore")
    package_vulnerability_details: PackageVulnerabilityDetails | None = Field(
        default=None, alias="packageVulnerabilityDetails"
    )
    resources: list[InspectorResource] = Field(default_factory=list)

    @property
    def ecr_image(self) -> EcrContainerImage | None:
        for resource in self.resources:
            if resource.type == "AWS_ECR_CONTAINER_IMAGE" and resource.details.aws_ecr_container_image:
                return resource.details.aws_ecr_container_image
        return None


class InspectorFindingEvent(EventBridgeEnvelope):
    source: Literal["aws.inspector2"]
    detail_type: Literal["Inspector2 Finding"] = Field(alias="detail-type")
    detail: InspectorFindingDetail


ScanEvent = Annotated[
    EcrImageScanEvent | InspectorScanEvent | InspectorFindingEvent,
    Field(discriminator="detail_type"),
]
