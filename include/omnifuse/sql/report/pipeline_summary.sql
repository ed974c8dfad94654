-- pipeline_summary: headline facts of a business date as (fact, value) text pairs. Parameters: business_date.
select 'identifiers', identifiers::text from core.identity_runs where business_date = %(business_date)s
union all select 'customers', customers::text from core.identity_runs where business_date = %(business_date)s
union all select 'merged_crm_ids', merged_crm_ids::text from core.identity_runs where business_date = %(business_date)s
union all select 'shared', shared::text from core.identity_runs where business_date = %(business_date)s
union all select 'interactions', count(*)::text from core.interactions
union all select 'attributed_share', round(100.0 * count(customer_id) / greatest(count(*), 1), 1)::text || '%%'
    from core.interactions
union all select 'champion', model_version from ml.model_registry where status = 'champion'
union all select 'champion_reason', reason from ml.model_registry where status = 'champion'
