-- envpatrol storage, version 45: API keys limited to areas. Sub-districts sharing one
-- deployment see only their own management grids and what lies in them (cases, hotspots).
--
-- A grid may name its sub-district (街道) so that a key can be limited to every grid of a
-- sub-district, including grids uploaded after the key was made; or a key names grids one by
-- one (a grid worker's key). A key's scope is the union of both lists. Both columns NULL: the
-- whole deployment, as for every key made before this version. Empty lists are not
-- "everything": a key whose grids were all deleted sees nothing rather than everything.
ALTER TABLE management_grid ADD COLUMN subdistrict text;
CREATE INDEX management_grid_subdistrict_idx ON management_grid (subdistrict)
    WHERE subdistrict IS NOT NULL;

-- Grids uploaded with a `subdistrict` property kept it among their other properties until now.
UPDATE management_grid
   SET subdistrict = btrim(properties ->> 'subdistrict'), properties = properties - 'subdistrict'
 WHERE jsonb_typeof(properties -> 'subdistrict') = 'string'
   AND btrim(properties ->> 'subdistrict') <> '';

-- Grid ids are bigserial and never reused, so a deleted grid's id left in a scope matches nothing.
ALTER TABLE api_key ADD COLUMN scope_grids bigint[];
ALTER TABLE api_key ADD COLUMN scope_subdistricts text[];
ALTER TABLE api_key ADD CONSTRAINT api_key_scope_check
    CHECK ((scope_grids IS NULL) = (scope_subdistricts IS NULL));
