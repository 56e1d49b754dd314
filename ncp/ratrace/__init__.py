"""RA traceability: RA requirements (section, sentence) mapped to the code, policies, tests and evidence that carry
a reference to them (`# RA: <section>: "<sentence>"` next to the implementation)."""
