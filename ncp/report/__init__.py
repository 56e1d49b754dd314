"""Release review of a stack: versions vs the RA matrix, images, decisions, disposition, policies, evidence, SBOM
availability, RA traceability, and a picture of the site's layers, tenants and endpoints."""
