-- envpatrol storage, version 39: each hotspot cell's own figures, written by the hotspot job.
-- passes: the cell's passes in the run's window with a value of the hotspot's pollutant;
-- median: their median value as measured (energy mean per pass for noise), before the
-- analysis' lag shift and background. The API shows them as the hotspot's evidence without
-- reading every pass again. NULL for runs written before this version.
ALTER TABLE hotspot_cell ADD COLUMN passes integer;
ALTER TABLE hotspot_cell ADD COLUMN median double precision;
