// Saved queries, scheduled reports and the OCEL 2.0 export (issue 15).
